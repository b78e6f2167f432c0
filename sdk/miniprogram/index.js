'use strict'
// Qiao mini-program SDK: sign a WeChat mini-program in with a Qiao broker
// (wx.login code -> RFC 8693 token exchange -> OIDC tokens), keep the
// tokens in wx storage, call APIs with the access token, and bind this
// WeChat account to a user through the account API.
//
// Plain ES2017, CommonJS, no dependencies: it runs in WeChat's JS engine
// as it is (copy this file, or install the package and build npm in the
// WeChat developer tools).

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const WECHAT_JS_CODE = 'urn:qiao:params:oauth:token-type:wechat-js-code'
const DEFAULT_SCOPE = 'openid profile offline_access'
const DEFAULT_CONNECTOR = 'wechat_miniprogram'
const DEFAULT_STORAGE_KEY = 'qiao_tokens'
// An access token this close to its expiry is refreshed before use.
const EXPIRY_MARGIN_MS = 30 * 1000

// QiaoError is every failure the SDK reports. kind says what to do:
//   'busy'           WeChat or the broker is busy: retry later
//                    (retryAfter: seconds, when the server said)
//   'login_required' no tokens, or they no longer work, or (error
//                    'insufficient_user_authentication') the sign-in is too
//                    old for the call: call login() again
//   'network'        no answer (offline, timeout, domain not allowed)
//   'config'         the broker refused the client's setup (client id,
//                    connector, scope, request domain): fix the code
//   'conflict'       bindTo: this WeChat account belongs to another user
//   'server'         the broker failed unexpectedly
// status is the HTTP status (0 without an answer), error and description
// the broker's OAuth error and text.
class QiaoError extends Error {
  constructor (kind, message, details) {
    super(message)
    const d = details || {}
    this.name = 'QiaoError'
    this.kind = kind
    this.status = d.status || 0
    this.error = d.error || ''
    this.description = d.description || ''
    this.retryAfter = d.retryAfter || 0
    if (d.cause !== undefined) this.cause = d.cause
  }
}

function form (params) {
  return Object.keys(params)
    .filter(k => params[k] !== undefined && params[k] !== '')
    .map(k => encodeURIComponent(k) + '=' + encodeURIComponent(params[k]))
    .join('&')
}

function headerValue (headers, name) {
  if (!headers) return ''
  const want = name.toLowerCase()
  for (const k of Object.keys(headers)) {
    if (k.toLowerCase() === want) return String(headers[k])
  }
  return ''
}

function bodyObject (data) {
  if (data && typeof data === 'object') return data
  if (typeof data === 'string') {
    try {
      const v = JSON.parse(data)
      if (v && typeof v === 'object') return v
    } catch (e) { /* not JSON */ }
  }
  return {}
}

// errorFromResponse turns a broker answer that is not a success into a
// QiaoError. api: the answer came from a bearer-token API (a 401 there
// means the token is no good), not from the token endpoint.
function errorFromResponse (res, what, api) {
  const body = bodyObject(res.data)
  const status = res.statusCode
  const details = {
    status,
    error: typeof body.error === 'string' ? body.error : '',
    description: typeof body.error_description === 'string' ? body.error_description : ''
  }
  const retry = parseInt(headerValue(res.header, 'Retry-After'), 10)
  if (retry > 0) details.retryAfter = retry
  const text = what + ': HTTP ' + status + (details.error ? ' ' + details.error : '') +
    (details.description ? ' (' + details.description + ')' : '')
  let kind
  if (status === 503 || status === 429 || details.error === 'temporarily_unavailable' || details.error === 'slow_down') {
    kind = 'busy'
  } else if (details.error === 'invalid_grant' || (api && status === 401)) {
    kind = 'login_required'
  } else if (status === 409) {
    kind = 'conflict'
  } else if (status >= 500) {
    kind = 'server'
  } else {
    kind = 'config'
  }
  return new QiaoError(kind, text, details)
}

// base64url -> UTF-8 string, without atob or TextDecoder (neither is
// in every WeChat base library).
function base64urlDecode (s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const bytes = []
  let bits = 0
  let value = 0
  for (const ch of s.replace(/=+$/, '')) {
    const i = alphabet.indexOf(ch)
    if (i < 0) throw new Error('not base64url')
    value = (value << 6) | i
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes.push((value >> bits) & 0xff)
    }
  }
  let out = ''
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]
    let cp
    let n
    if (b < 0x80) { cp = b; n = 1 } else if (b >= 0xf0) { cp = b & 0x07; n = 4 } else if (b >= 0xe0) { cp = b & 0x0f; n = 3 } else { cp = b & 0x1f; n = 2 }
    for (let j = 1; j < n; j++) cp = (cp << 6) | (bytes[i + j] & 0x3f)
    out += String.fromCodePoint(cp)
    i += n
  }
  return out
}

function createClient (options) {
  const o = options || {}
  const wxApi = o.wx || (typeof wx !== 'undefined' ? wx : undefined)
  if (!wxApi || typeof wxApi.request !== 'function' || typeof wxApi.login !== 'function') {
    throw new QiaoError('config', 'qiao: no wx object (pass options.wx outside a mini-program)')
  }
  if (!o.clientId) throw new QiaoError('config', 'qiao: options.clientId is required')
  let issuer = o.issuer ? String(o.issuer).replace(/\/+$/, '') : ''
  let tokenEndpoint = o.tokenEndpoint ? String(o.tokenEndpoint) : ''
  if (!issuer && !tokenEndpoint) throw new QiaoError('config', 'qiao: options.issuer (or options.tokenEndpoint) is required')
  if (!tokenEndpoint) tokenEndpoint = issuer + '/token'
  if (!issuer) issuer = tokenEndpoint.replace(/\/token$/, '')
  const clientId = String(o.clientId)
  const connectorId = o.connectorId || DEFAULT_CONNECTOR
  const scope = o.scope || DEFAULT_SCOPE
  const storageKey = o.storageKey || DEFAULT_STORAGE_KEY
  const timeout = o.timeout || 0
  const now = o.now || (() => Date.now())

  // call wraps wx.request in a promise; no answer is a 'network' error.
  function call (req, what) {
    return new Promise((resolve, reject) => {
      const r = Object.assign({}, req, {
        success: res => resolve(res),
        fail: err => reject(new QiaoError('network', what + ': ' + ((err && err.errMsg) || 'request failed'), { cause: err }))
      })
      if (timeout && r.timeout === undefined) r.timeout = timeout
      wxApi.request(r)
    })
  }

  function wxCode () {
    return new Promise((resolve, reject) => {
      wxApi.login({
        success: res => {
          if (res && res.code) resolve(res.code)
          else reject(new QiaoError('network', 'wx.login gave no code: ' + ((res && res.errMsg) || '')))
        },
        fail: err => reject(new QiaoError('network', 'wx.login failed: ' + ((err && err.errMsg) || ''), { cause: err }))
      })
    })
  }

  function load () {
    let t
    try {
      t = wxApi.getStorageSync(storageKey)
    } catch (e) {
      return null
    }
    if (typeof t === 'string' && t) t = bodyObject(t)
    return t && typeof t === 'object' && t.access_token ? t : null
  }

  function save (body) {
    const t = {
      access_token: body.access_token,
      token_type: body.token_type || 'Bearer',
      expires_at: body.expires_in ? now() + Number(body.expires_in) * 1000 : 0,
      refresh_token: body.refresh_token || '',
      id_token: body.id_token || '',
      scope: body.scope || ''
    }
    wxApi.setStorageSync(storageKey, t)
    return t
  }

  function clear () {
    try {
      if (typeof wxApi.removeStorageSync === 'function') wxApi.removeStorageSync(storageKey)
      else wxApi.setStorageSync(storageKey, '')
    } catch (e) { /* nothing stored */ }
  }

  async function tokenRequest (params, what) {
    const res = await call({
      url: tokenEndpoint,
      method: 'POST',
      header: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      data: form(params)
    }, what)
    const body = bodyObject(res.data)
    if (res.statusCode !== 200 || !body.access_token) throw errorFromResponse(res, what, false)
    return save(body)
  }

  // login signs in with a fresh wx.login code; with phoneCode (from the
  // getPhoneNumber button) the ID token carries the verified number.
  async function login (opts) {
    const phoneCode = opts && opts.phoneCode
    let s = scope
    if (phoneCode && s.split(' ').indexOf('phone') < 0) s += ' phone'
    const code = await wxCode()
    return tokenRequest({
      grant_type: TOKEN_EXCHANGE,
      subject_token: code,
      subject_token_type: WECHAT_JS_CODE,
      subject_issuer: connectorId,
      client_id: clientId,
      scope: s,
      phone_code: phoneCode
    }, 'qiao login')
  }

  // refresh trades the refresh token for new tokens (the refresh token is
  // rotated: the new one is kept). Concurrent calls share one request.
  let refreshing = null
  function refresh () {
    if (refreshing) return refreshing
    refreshing = (async () => {
      const t = load()
      if (!t || !t.refresh_token) {
        throw new QiaoError('login_required', 'qiao refresh: no refresh token stored (sign in with scope offline_access)')
      }
      try {
        return await tokenRequest({ grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: clientId }, 'qiao refresh')
      } catch (e) {
        if (e.kind === 'login_required') clear()
        throw e
      }
    })()
    const done = () => { refreshing = null }
    refreshing.then(done, done)
    return refreshing
  }

  // accessToken returns a usable access token, refreshing one that has
  // expired or is about to.
  async function accessToken () {
    const t = load()
    if (!t) throw new QiaoError('login_required', 'qiao: not signed in')
    if (t.expires_at && t.expires_at - EXPIRY_MARGIN_MS <= now() && t.refresh_token) {
      return (await refresh()).access_token
    }
    return t.access_token
  }

  // authorized runs send(token) with the stored access token; on a 401 it
  // refreshes once and sends again.
  async function authorized (send, what) {
    let token = await accessToken()
    let res = await send(token)
    if (res.statusCode === 401) {
      const err = errorFromResponse(res, what, true)
      // A sign-in too old for this call: a refresh keeps its time, only
      // a new sign-in helps.
      if (err.error === 'insufficient_user_authentication' || /insufficient_user_authentication/.test(headerValue(res.header, 'WWW-Authenticate'))) {
        err.error = 'insufficient_user_authentication'
        throw err
      }
      token = (await refresh()).access_token
      res = await send(token)
      if (res.statusCode === 401) throw errorFromResponse(res, what, true)
    }
    return res
  }

  // request is wx.request with the access token: it resolves with the
  // answer ({statusCode, data, header}) whatever its status, except a 401
  // that a refresh does not cure (login_required); no answer rejects
  // with 'network'.
  function request (req) {
    const r = req || {}
    return authorized(token => call(Object.assign({}, r, {
      header: Object.assign({}, r.header, { Authorization: 'Bearer ' + token })
    }), 'qiao request ' + (r.url || '')), 'qiao request ' + (r.url || ''))
  }

  // bindTo binds this WeChat account (a fresh wx.login code) to the user
  // whose access token is given, or to the signed-in user. The token needs
  // the scope `account`. Resolves with {identity, created}; an account
  // that belongs to someone else rejects with kind 'conflict'.
  async function bindTo (opts) {
    const given = opts && opts.accessToken
    const what = 'qiao bind'
    const code = await wxCode()
    const send = token => call({
      url: issuer + '/api/v1/me/identities',
      method: 'POST',
      header: { 'content-type': 'application/json', accept: 'application/json', Authorization: 'Bearer ' + token },
      data: JSON.stringify({ connector_id: (opts && opts.connectorId) || connectorId, code })
    }, what)
    let res
    if (given) {
      res = await send(given)
    } else {
      res = await authorized(send, what)
    }
    if (res.statusCode !== 200 && res.statusCode !== 201) throw errorFromResponse(res, what, true)
    return { identity: bodyObject(res.data), created: res.statusCode === 201 }
  }

  // logout revokes the refresh token at the broker (best effort: an
  // offline phone still signs out) and forgets the tokens.
  async function logout () {
    const t = load()
    clear()
    if (!t || !t.refresh_token) return
    try {
      await call({
        url: issuer + '/revoke',
        method: 'POST',
        header: { 'content-type': 'application/x-www-form-urlencoded' },
        data: form({ token: t.refresh_token, token_type_hint: 'refresh_token', client_id: clientId })
      }, 'qiao logout')
    } catch (e) { /* the tokens are gone from the phone */ }
  }

  // tokens returns what is stored, or null.
  function tokens () { return load() }

  // claims returns the stored ID token's claims (sub, name, picture,
  // phone_number...), or null. They are not verified here: the broker
  // just issued them over TLS; a server must verify the signature.
  function claims () {
    const t = load()
    if (!t || !t.id_token) return null
    const parts = t.id_token.split('.')
    if (parts.length !== 3) return null
    try {
      return JSON.parse(base64urlDecode(parts[1]))
    } catch (e) {
      return null
    }
  }

  // scanLogin(query): the page a mini-program code opens signs a
  // computer in (scan.js). setName / setPicture / removePicture: the
  // person's own profile with the stored token (profile.js; the scope
  // must include account).
  const scan = require('./scan').createScanLogin({ issuer, wx: wxApi })
  const own = typeof wxApi.uploadFile === 'function'
    ? require('./profile').createProfile({ issuer, wx: wxApi, accessToken: () => (load() || {}).access_token })
    : null
  function needUpload () { throw new QiaoError('config', 'qiao: wx.uploadFile is missing') }
  return {
    login, refresh, request, bindTo, logout, tokens, claims, issuer, tokenEndpoint,
    scanLogin: scan.scanLogin,
    setName: own ? own.setName : needUpload,
    setPicture: own ? own.setPicture : needUpload,
    removePicture: own ? own.removePicture : needUpload
  }
}

module.exports = { createClient, QiaoError }
