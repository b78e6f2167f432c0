'use strict'
// Qiao mini-program SDK, scan login (小程序扫码登录): the page the
// mini-program code opens calls scanLogin(query) in onLoad. It decodes
// the scene, proves who is scanning with a wx.login code, and returns
// what the person is about to approve (the app's name, when the code was
// made) with confirm() and refuse(). Show the app's name and the time,
// and the warning, before the person confirms.
//
// Plain ES2017, CommonJS, no dependencies, like index.js.
//
//   const { createScanLogin } = require('qiao-miniprogram/scan')
//   const qiao = createScanLogin({ issuer: 'https://sso.example.com' })
//   Page({
//     async onLoad (query) {
//       this.scan = await qiao.scanLogin(query)
//       this.setData({ app: this.scan.clientName, made: new Date(this.scan.createdAt) })
//     },
//     confirm () { return this.scan.confirm() },
//     refuse () { return this.scan.refuse() }
//   })

// ScanError is every failure scanLogin reports. kind says what to show:
//   'expired'   the code expired or is unknown: scan a new code
//   'used'      the code was already scanned, confirmed or refused
//   'denied'    the broker refused this person or ticket
//   'busy'      WeChat or the broker is busy: try again
//   'network'   no answer
//   'config'    the page was opened without a scene, or the broker
//               refused the request: fix the code
// status, error and description are the broker's answer.
class ScanError extends Error {
  constructor (kind, message, details) {
    super(message)
    const d = details || {}
    this.name = 'ScanError'
    this.kind = kind
    this.status = d.status || 0
    this.error = d.error || ''
    this.description = d.description || ''
  }
}

// sceneOf returns the scene of the page's onLoad query: WeChat passes it
// URL-encoded in query.scene (the developer tools' compile condition
// too). A scene the broker made is 24 letters and digits.
function sceneOf (query) {
  const raw = query && query.scene
  if (typeof raw !== 'string' || raw === '') {
    throw new ScanError('config', 'qiao: the page was not opened by a mini-program code (no scene in the query)')
  }
  let scene
  try {
    scene = decodeURIComponent(raw)
  } catch (e) {
    throw new ScanError('config', 'qiao: the scene is not URL-encoded text')
  }
  if (!/^[A-Za-z0-9]{24}$/.test(scene)) {
    throw new ScanError('expired', 'qiao: this code is not a sign-in code of this broker')
  }
  return scene
}

function kindOf (status, error) {
  switch (error) {
    case 'expired_scene':
    case 'unknown_scene':
      return 'expired'
    case 'already_scanned':
    case 'already_confirmed':
    case 'already_refused':
    case 'not_scanned':
      return 'used'
    case 'access_denied':
    case 'invalid_grant':
      return 'denied'
    case 'temporarily_unavailable':
    case 'slow_down':
      return 'busy'
  }
  return status >= 500 ? 'busy' : 'config'
}

function createScanLogin (options) {
  const o = options || {}
  const wxApi = o.wx || (typeof wx !== 'undefined' ? wx : undefined)
  if (!wxApi || typeof wxApi.request !== 'function' || typeof wxApi.login !== 'function') {
    throw new ScanError('config', 'qiao: no wx object (pass options.wx outside a mini-program)')
  }
  if (!o.issuer) throw new ScanError('config', 'qiao: options.issuer is required')
  const api = String(o.issuer).replace(/\/+$/, '') + '/api/v1/scan/'

  function wxLogin () {
    return new Promise((resolve, reject) => {
      wxApi.login({
        success: res => res && res.code ? resolve(res.code) : reject(new ScanError('network', 'qiao: wx.login gave no code')),
        fail: err => reject(new ScanError('network', 'qiao: wx.login failed: ' + ((err && err.errMsg) || err)))
      })
    })
  }

  function post (scene, step, body) {
    return new Promise((resolve, reject) => {
      wxApi.request({
        url: api + scene + step,
        method: 'POST',
        header: { 'Content-Type': 'application/json' },
        data: body,
        success: res => {
          let data = res.data
          if (typeof data === 'string') {
            try { data = JSON.parse(data) } catch (e) { data = {} }
          }
          data = data || {}
          if (res.statusCode === 200) {
            resolve(data)
            return
          }
          const error = typeof data.error === 'string' ? data.error : ''
          const description = typeof data.error_description === 'string' ? data.error_description : ''
          reject(new ScanError(kindOf(res.statusCode, error), 'qiao: scan' + step + ': HTTP ' + res.statusCode + ' ' + error + (description ? ' (' + description + ')' : ''),
            { status: res.statusCode, error, description }))
        },
        fail: err => reject(new ScanError('network', 'qiao: scan' + step + ': ' + ((err && err.errMsg) || err)))
      })
    })
  }

  // scanLogin decodes the scene, sends a wx.login code and returns what
  // is being approved, with confirm() (a fresh wx.login code: the same
  // person again) and refuse().
  async function scanLogin (query) {
    const scene = sceneOf(query)
    const res = await post(scene, '', { code: await wxLogin() })
    const ticket = res.ticket
    let done = false
    async function finish (step, body) {
      if (done) throw new ScanError('used', 'qiao: this sign-in was already ' + done)
      const out = await post(scene, step, body)
      done = out.status
      return out.status
    }
    return {
      scene,
      clientId: res.client_id,
      clientName: res.client_name,
      connectorId: res.connector,
      createdAt: res.created_at * 1000, // ms, for new Date()
      expiresAt: res.expires_at * 1000,
      confirm: async () => finish('/confirm', { ticket, code: await wxLogin() }),
      refuse: () => finish('/refuse', { ticket })
    }
  }

  return { scanLogin }
}

module.exports = { createScanLogin, ScanError, sceneOf }
