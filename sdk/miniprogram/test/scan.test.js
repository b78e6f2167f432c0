'use strict'
// scanLogin against a real broker and the WeChat simulator: the Go test
// sdk_test.go starts a `qiao demo` and sets QIAO_ISSUER,
// QIAO_WECHAT_URL and QIAO_APP_URL. Run: node --test test/scan.test.js

const test = require('node:test')
const assert = require('node:assert/strict')
const { createScanLogin, ScanError, sceneOf } = require('../scan')

const env = {
  issuer: process.env.QIAO_ISSUER,
  wechatURL: process.env.QIAO_WECHAT_URL,
  appURL: process.env.QIAO_APP_URL,
  appid: process.env.QIAO_MINI_APPID || 'wxd3e0000000000003',
  clientId: process.env.QIAO_WEB_CLIENT_ID || 'example-app'
}

test.before(() => {
  assert.ok(env.issuer && env.wechatURL && env.appURL, 'set QIAO_ISSUER, QIAO_WECHAT_URL and QIAO_APP_URL (the Go test sdk_test.go does)')
})

// fakeWx is the wx API of a phone in the sandbox: login() asks the
// simulator for the current person's code, request() is fetch.
function fakeWx (person) {
  const w = {
    person,
    requests: [],
    login (o) {
      fetch(env.wechatURL + '/sandbox/wx.login?' + new URLSearchParams({ appid: env.appid, person: w.person }), { method: 'POST' })
        .then(r => r.json()).then(j => o.success({ code: j.code }), o.fail)
    },
    request (o) {
      w.requests.push(o)
      fetch(o.url, { method: o.method, headers: o.header, body: JSON.stringify(o.data) })
        .then(async r => o.success({ statusCode: r.status, data: await r.text() }), err => o.fail({ errMsg: String(err) }))
    }
  }
  return w
}

// computer starts a scan login as a browser would and returns its scene
// and the browser's cookie.
async function computer () {
  const q = new URLSearchParams({
    client_id: env.clientId, redirect_uri: env.appURL + '/callback', response_type: 'code',
    scope: 'openid', state: 'st' + Date.now(), connector_id: 'wechat_miniprogram'
  })
  const r = await fetch(env.issuer + '/auth?' + q, { redirect: 'manual', headers: { 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64)' } })
  assert.equal(r.status, 303, 'the scan login redirects to its page')
  const loc = new URL(r.headers.get('location'), env.issuer)
  const scene = loc.pathname.split('/').pop()
  const cookie = r.headers.getSetCookie().map(c => c.split(';')[0]).join('; ')
  assert.match(cookie, /qiao_scan=/)
  return {
    scene,
    query: { scene: encodeURIComponent(scene) }, // as WeChat hands it to onLoad
    status: async () => (await (await fetch(env.issuer + '/scan/' + scene + '/status', { headers: { cookie } })).json()).status,
    finish: () => fetch(env.issuer + '/scan/' + scene + '/finish', { redirect: 'manual', headers: { cookie } })
  }
}

test('scanLogin shows what is approved; confirm signs the computer in', async () => {
  const pc = await computer()
  const wx = fakeWx('alice')
  const scan = await createScanLogin({ issuer: env.issuer, wx }).scanLogin(pc.query)
  assert.equal(scan.scene, pc.scene)
  assert.equal(scan.clientId, env.clientId)
  assert.equal(scan.clientName, 'Example App')
  assert.ok(scan.createdAt <= Date.now() + 1000 && scan.expiresAt > Date.now(), JSON.stringify(scan))
  assert.equal(await pc.status(), 'scanned')
  assert.equal(await scan.confirm(), 'confirmed')
  assert.equal(await pc.status(), 'confirmed')
  const fin = await pc.finish()
  assert.equal(fin.status, 303)
  assert.match(fin.headers.get('location'), /\/callback\?code=/)
  // confirm sent a fresh code, not the scan's.
  const codes = wx.requests.map(r => r.data.code).filter(Boolean)
  assert.equal(codes.length, 2)
  assert.notEqual(codes[0], codes[1])
  await assert.rejects(scan.refuse(), err => err instanceof ScanError && err.kind === 'used')
})

test('createClient(...).scanLogin is the same helper', async () => {
  const { createClient } = require('..')
  const pc = await computer()
  const client = createClient({ issuer: env.issuer, clientId: 'miniprogram', wx: Object.assign(fakeWx('alice'), { getStorageSync () { return '' }, setStorageSync () {}, removeStorageSync () {} }) })
  const scan = await client.scanLogin(pc.query)
  assert.equal(scan.clientName, 'Example App')
  assert.equal(await scan.refuse(), 'refused')
  assert.equal(typeof client.setName, 'function')
})

test('refuse needs no new code, and the page turns to refused', async () => {
  const pc = await computer()
  const wx = fakeWx('bob')
  const scan = await createScanLogin({ issuer: env.issuer, wx }).scanLogin(pc.query)
  assert.equal(await scan.refuse(), 'refused')
  assert.equal(wx.requests.length, 2)
  assert.equal(wx.requests[1].data.code, undefined)
  assert.equal(await pc.status(), 'refused')
})

test('a second scan, another person confirming, a bad or unknown scene: typed errors', async () => {
  const pc = await computer()
  const wx = fakeWx('alice')
  const qiao = createScanLogin({ issuer: env.issuer, wx })
  const scan = await qiao.scanLogin(pc.query)
  await assert.rejects(createScanLogin({ issuer: env.issuer, wx: fakeWx('carol') }).scanLogin(pc.query),
    err => err instanceof ScanError && err.kind === 'used' && err.status === 409 && err.error === 'already_scanned')
  wx.person = 'bob'
  await assert.rejects(scan.confirm(), err => err.kind === 'denied' && err.status === 403)
  assert.equal(await pc.status(), 'scanned', 'nothing changed')
  wx.person = 'alice'
  assert.equal(await scan.confirm(), 'confirmed')

  assert.throws(() => sceneOf({}), err => err.kind === 'config')
  assert.throws(() => sceneOf({ scene: '%E0%A4%A' }), err => err.kind === 'config')
  assert.throws(() => sceneOf({ scene: 'a%3D1' }), err => err.kind === 'expired')
  await assert.rejects(qiao.scanLogin({ scene: 'AAAAAAAAAAAAAAAAAAAAAAAA' }), err => err.kind === 'expired' && err.error === 'unknown_scene')
  assert.throws(() => createScanLogin({ issuer: env.issuer }), err => err.kind === 'config')
})
