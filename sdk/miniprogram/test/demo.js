'use strict'
// The broker and the WeChat simulator the tests run against: the URLs in
// the environment (the Go test sdk_test.go starts a demo and sets them),
// or else a `qiao demo` this helper starts with `go run` from the
// repository and stops at the end.

const { spawn } = require('node:child_process')
const path = require('node:path')

const MINI_APPID = 'wxd3e0000000000003' // the demo's mini-program
const CLIENT_ID = 'miniprogram'
const CONNECTOR_ID = 'wechat_miniprogram'

// printedURL finds the URL printed after label, as the demo prints it.
function printedURL (out, label) {
  for (const line of out.split('\n')) {
    const t = line.trim()
    if (t.startsWith(label)) return t.slice(label.length).trim().split(/\s+/)[0] || ''
  }
  return ''
}

function fromEnv () {
  const e = process.env
  if (!e.QIAO_ISSUER || !e.QIAO_WECHAT_URL) return null
  return {
    issuer: e.QIAO_ISSUER,
    wechatURL: e.QIAO_WECHAT_URL,
    appid: e.QIAO_MINI_APPID || MINI_APPID,
    clientId: e.QIAO_CLIENT_ID || CLIENT_ID,
    connectorId: e.QIAO_CONNECTOR_ID || CONNECTOR_ID,
    stop: async () => {}
  }
}

// startDemo runs `go run ./cmd/qiao demo --listen 127.0.0.1` and waits
// for its URLs.
function startDemo () {
  const root = path.resolve(__dirname, '..', '..', '..')
  const child = spawn('go', ['run', './cmd/qiao', 'demo', '--listen', '127.0.0.1'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let out = ''
  let errOut = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('the demo printed no URLs in 180 s:\n' + out + errOut)), 180000)
    function fail (err) {
      clearTimeout(timer)
      try { process.kill(-child.pid, 'SIGTERM') } catch (e) { /* gone */ }
      reject(err)
    }
    child.stderr.on('data', d => { errOut += d })
    child.stdout.on('data', d => {
      out += d
      if (!out.includes('Press Ctrl-C to stop.')) return
      clearTimeout(timer)
      resolve({
        issuer: printedURL(out, 'broker issuer:'),
        wechatURL: printedURL(out, 'WeChat sim:'),
        appid: MINI_APPID,
        clientId: CLIENT_ID,
        connectorId: CONNECTOR_ID,
        stop: () => new Promise(resolve => {
          child.once('exit', resolve)
          // go run's child is in the same process group.
          try { process.kill(-child.pid, 'SIGTERM') } catch (e) { resolve() }
        })
      })
    })
    child.on('error', fail)
    child.on('exit', code => fail(new Error('the demo exited with ' + code + ':\n' + errOut)))
  })
}

async function demo () {
  return fromEnv() || startDemo()
}

// fakeWx is the wx API of a phone in the sandbox: login() asks the
// WeChat simulator for person's code, request() is fetch, storage a Map.
// Set wx.nextCode to hand out that code once instead.
function fakeWx (env, person) {
  const storage = new Map()
  const w = {
    storage,
    person,
    nextCode: '',
    requests: [],
    login ({ success, fail }) {
      if (w.nextCode) {
        const code = w.nextCode
        w.nextCode = ''
        setImmediate(() => success({ code, errMsg: 'login:ok' }))
        return
      }
      const u = env.wechatURL + '/sandbox/wx.login?appid=' + encodeURIComponent(env.appid) + '&person=' + encodeURIComponent(w.person)
      fetch(u, { method: 'POST' })
        .then(r => r.json())
        .then(j => j.code ? success({ code: j.code, errMsg: 'login:ok' }) : fail({ errMsg: 'login:fail ' + j.error }))
        .catch(e => fail({ errMsg: 'login:fail ' + e.message }))
    },
    request ({ url, method, data, header, success, fail }) {
      w.requests.push({ url, method: method || 'GET', header: Object.assign({}, header) })
      fetch(url, { method: method || 'GET', headers: header || {}, body: data === undefined ? undefined : (typeof data === 'string' ? data : JSON.stringify(data)) })
        .then(async r => {
          const text = await r.text()
          let body = text
          try { body = JSON.parse(text) } catch (e) { /* WeChat hands non-JSON over as a string */ }
          const h = {}
          r.headers.forEach((v, k) => { h[k] = v })
          success({ statusCode: r.status, data: body, header: h, errMsg: 'request:ok' })
        })
        .catch(e => fail({ errMsg: 'request:fail ' + e.message }))
    },
    getStorageSync (k) { return storage.has(k) ? JSON.parse(storage.get(k)) : '' },
    setStorageSync (k, v) { storage.set(k, JSON.stringify(v)) },
    removeStorageSync (k) { storage.delete(k) }
  }
  return w
}

module.exports = { demo, fakeWx, printedURL }
