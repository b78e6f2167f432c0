'use strict'
// Qiao mini-program SDK, the person's own profile: WeChat gives
// mini-programs "微信用户" and a grey avatar, so the mini-program lets the
// person pick them with WeChat's avatar and nickname components and
// sends them to the broker, which then puts them in ID tokens and
// userinfo. Needs an access token with the scope `account` (a client
// with account_api).
//
//   <button open-type="chooseAvatar" bind:chooseavatar="onAvatar">…</button>
//   <input type="nickname" bindblur="onName"/>
//
//   const { createProfile } = require('qiao-miniprogram/profile')
//   const profile = createProfile({ issuer, accessToken: () => client.tokens().access_token })
//   onAvatar (e) { return profile.setPicture(e.detail.avatarUrl) } // a temporary file path
//   onName (e) { return profile.setName(e.detail.value) }
//
// Plain ES2017, CommonJS, no dependencies.

class ProfileError extends Error {
  constructor (kind, message, details) {
    super(message)
    const d = details || {}
    this.name = 'ProfileError'
    // 'login_required' (no token, or it lacks the account scope),
    // 'invalid' (not PNG/JPEG/WebP, over 256 KB, bad name), 'busy',
    // 'network', 'server'
    this.kind = kind
    this.status = d.status || 0
    this.error = d.error || ''
    this.description = d.description || ''
  }
}

function parse (data) {
  if (typeof data === 'string') {
    try { return JSON.parse(data) } catch (e) { return {} }
  }
  return data || {}
}

function fail (what, res) {
  const body = parse(res.data)
  const status = res.statusCode
  let kind = 'server'
  if (status === 401 || status === 403) kind = 'login_required'
  else if (status === 400 || status === 413 || status === 415) kind = 'invalid'
  else if (status === 503 || status === 429) kind = 'busy'
  return new ProfileError(kind, 'qiao: ' + what + ': HTTP ' + status + ' ' + (body.error || '') + (body.error_description ? ' (' + body.error_description + ')' : ''),
    { status, error: body.error, description: body.error_description })
}

function createProfile (options) {
  const o = options || {}
  const wxApi = o.wx || (typeof wx !== 'undefined' ? wx : undefined)
  if (!wxApi || typeof wxApi.request !== 'function' || typeof wxApi.uploadFile !== 'function') {
    throw new ProfileError('server', 'qiao: no wx object (pass options.wx outside a mini-program)')
  }
  if (!o.issuer || typeof o.accessToken !== 'function') {
    throw new ProfileError('server', 'qiao: options.issuer and options.accessToken (a function) are required')
  }
  const base = String(o.issuer).replace(/\/+$/, '') + '/api/v1/me'

  function auth () {
    const t = o.accessToken()
    if (!t) throw new ProfileError('login_required', 'qiao: no access token')
    return 'Bearer ' + t
  }

  // setName sets the person's name ("" clears it); it resolves to the
  // broker's /api/v1/me view (name cleaned and capped as the broker did).
  function setName (name) {
    return new Promise((resolve, reject) => {
      wxApi.request({
        url: base + '/name',
        method: 'PUT',
        header: { Authorization: auth(), 'Content-Type': 'application/json' },
        data: { name: String(name) },
        success: res => res.statusCode === 200 ? resolve(parse(res.data)) : reject(fail('setName', res)),
        fail: err => reject(new ProfileError('network', 'qiao: setName: ' + ((err && err.errMsg) || err)))
      })
    })
  }

  // setPicture uploads a picture (the temporary file path chooseAvatar
  // gives): PNG, JPEG or WebP, at most 256 KB.
  function setPicture (filePath) {
    return new Promise((resolve, reject) => {
      wxApi.uploadFile({
        url: base + '/picture',
        filePath,
        name: 'picture',
        header: { Authorization: auth() },
        success: res => res.statusCode === 200 ? resolve(parse(res.data)) : reject(fail('setPicture', res)),
        fail: err => reject(new ProfileError('network', 'qiao: setPicture: ' + ((err && err.errMsg) || err)))
      })
    })
  }

  // removePicture brings the providers' picture back.
  function removePicture () {
    return new Promise((resolve, reject) => {
      wxApi.request({
        url: base + '/picture',
        method: 'DELETE',
        header: { Authorization: auth() },
        success: res => res.statusCode === 200 ? resolve(parse(res.data)) : reject(fail('removePicture', res)),
        fail: err => reject(new ProfileError('network', 'qiao: removePicture: ' + ((err && err.errMsg) || err)))
      })
    })
  }

  return { setName, setPicture, removePicture }
}

module.exports = { createProfile, ProfileError }
