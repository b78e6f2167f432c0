'use strict'
// The SDK against a real broker and the WeChat simulator (a `qiao demo`).
// Run: node --test test/sdk.test.js (from sdk/miniprogram), or the Go
// test sdk_test.go, which the repository's one test command runs.

const test = require('node:test')
const assert = require('node:assert/strict')
const { createClient, QiaoError } = require('..')
const { demo, fakeWx } = require('./demo')

let env

test.before(async () => {
  env = await demo()
  // bindTo's account API wants the scope `account`.
  const disco = await (await fetch(env.issuer + '/.well-known/openid-configuration')).json()
  assert.ok((disco.scopes_supported || []).includes('account'), 'the broker offers no account scope: ' + JSON.stringify(disco.scopes_supported))
})

test.after(async () => {
  if (env) await env.stop()
})

function client (person, extra) {
  const wx = fakeWx(env, person)
  const c = createClient(Object.assign({
    issuer: env.issuer,
    clientId: env.clientId,
    connectorId: env.connectorId,
    scope: 'openid profile offline_access account',
    wx
  }, extra))
  return { c, wx }
}

async function rejectsWith (promise, kind, check) {
  await assert.rejects(promise, err => {
    assert.ok(err instanceof QiaoError, 'not a QiaoError: ' + err)
    assert.equal(err.kind, kind, err.message)
    if (check) check(err)
    return true
  })
}

async function fault (form) {
  const r = await fetch(env.wechatURL + '/sandbox/fault', { method: 'POST', body: new URLSearchParams(form) })
  assert.equal(r.status, 200, await r.text())
}

test('login gives tokens, the same sub on every login of one person, stored through wx storage', async () => {
  const a = client('alice')
  const t1 = await a.c.login()
  assert.ok(t1.access_token && t1.refresh_token && t1.id_token, JSON.stringify(t1))
  assert.ok(t1.expires_at > Date.now())
  assert.deepEqual(a.wx.getStorageSync('qiao_tokens'), t1, 'the tokens are in wx storage')
  const sub = a.c.claims().sub
  assert.ok(sub)

  const again = client('alice')
  await again.c.login()
  assert.equal(again.c.claims().sub, sub, 'a second login of alice is the same user')
  const bob = client('bob')
  await bob.c.login()
  assert.notEqual(bob.c.claims().sub, sub, 'bob is another user')

  const custom = client('alice', { storageKey: 'my_key' })
  await custom.c.login()
  assert.ok(custom.wx.getStorageSync('my_key').access_token, 'storageKey is honoured')
  assert.equal(custom.wx.getStorageSync('qiao_tokens'), '')
})

test('claims() decodes the stored ID token, UTF-8 included', () => {
  const a = client('alice')
  assert.equal(a.c.claims(), null)
  const payload = Buffer.from(JSON.stringify({ sub: 'u1', name: '爱丽丝 🐼' })).toString('base64url')
  a.wx.setStorageSync('qiao_tokens', { access_token: 'x', id_token: 'e30.' + payload + '.sig' })
  assert.deepEqual(a.c.claims(), { sub: 'u1', name: '爱丽丝 🐼' })
  a.wx.setStorageSync('qiao_tokens', { access_token: 'x', id_token: 'garbage' })
  assert.equal(a.c.claims(), null)
})

test('refresh rotates the refresh token, and the old one no longer works', async () => {
  const a = client('alice')
  const t1 = await a.c.login()
  const t2 = await a.c.refresh()
  assert.notEqual(t2.refresh_token, t1.refresh_token, 'the refresh token is rotated')
  assert.notEqual(t2.access_token, t1.access_token)
  assert.equal(a.c.tokens().refresh_token, t2.refresh_token, 'the new one is stored')

  // A phone still holding the old refresh token must sign in again.
  const stale = client('alice')
  stale.wx.setStorageSync('qiao_tokens', t1)
  await rejectsWith(stale.c.refresh(), 'login_required', err => assert.equal(err.error, 'invalid_grant'))
  assert.equal(stale.c.tokens(), null, 'dead tokens are forgotten')
})

test('concurrent refreshes share one request', async () => {
  const a = client('alice')
  await a.c.login()
  const before = a.wx.requests.length
  const [x, y] = await Promise.all([a.c.refresh(), a.c.refresh()])
  assert.equal(x.refresh_token, y.refresh_token)
  assert.equal(a.wx.requests.length - before, 1)
})

test('request() adds the bearer token, and on a 401 refreshes once and retries', async () => {
  const a = client('alice')
  await a.c.login()
  const sub = a.c.claims().sub

  let res = await a.c.request({ url: env.issuer + '/userinfo' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.data.sub, sub)

  // An access token the broker does not know (revoked, or from another
  // broker): 401, one refresh, the same request again.
  const t = a.c.tokens()
  a.wx.setStorageSync('qiao_tokens', Object.assign({}, t, { access_token: 'not-a-token' }))
  const before = a.wx.requests.length
  res = await a.c.request({ url: env.issuer + '/userinfo' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.data.sub, sub)
  const calls = a.wx.requests.slice(before).map(r => r.url.replace(env.issuer, ''))
  assert.deepEqual(calls, ['/userinfo', '/token', '/userinfo'])
  assert.equal(a.wx.requests[a.wx.requests.length - 1].header.Authorization, 'Bearer ' + a.c.tokens().access_token)

  // Nothing to refresh with: the caller must sign in again.
  a.wx.setStorageSync('qiao_tokens', { access_token: 'not-a-token', refresh_token: 'not-a-refresh-token' })
  await rejectsWith(a.c.request({ url: env.issuer + '/userinfo' }), 'login_required')

  // Not signed in at all.
  await rejectsWith(client('alice').c.request({ url: env.issuer + '/userinfo' }), 'login_required')
})

test('an expired access token is refreshed before the request', async () => {
  const a = client('alice')
  await a.c.login()
  a.wx.setStorageSync('qiao_tokens', Object.assign({}, a.c.tokens(), { expires_at: Date.now() - 1000 }))
  const before = a.wx.requests.length
  const res = await a.c.request({ url: env.issuer + '/userinfo' })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(a.wx.requests.slice(before).map(r => r.url.replace(env.issuer, '')), ['/token', '/userinfo'])
})

test('an invalid or used code is a login_required error', async () => {
  const a = client('alice')
  a.wx.nextCode = 'not-a-code-from-wechat'
  await rejectsWith(a.c.login(), 'login_required', err => {
    assert.equal(err.status, 400)
    assert.equal(err.error, 'invalid_grant')
  })
  assert.equal(a.c.tokens(), null)
})

test('WeChat busy is a busy error; the next login works', async () => {
  // WeChat's -1, twice: the broker retries it once.
  await fault({ path: '/sns/jscode2session', errcode: '-1', times: '2' })
  const a = client('alice')
  try {
    await rejectsWith(a.c.login(), 'busy', err => {
      assert.equal(err.status, 503)
      assert.equal(err.error, 'temporarily_unavailable')
    })
  } finally {
    await fault({ clear: '1' })
  }
  await a.c.login()
  assert.ok(a.c.tokens().access_token)
})

test('bindTo binds this WeChat account through the account API; another user\'s is a conflict', async () => {
  const a = client('alice')
  await a.c.login()
  // alice's WeChat is alice's already: 200, not created.
  const mine = await a.c.bindTo()
  assert.equal(mine.created, false)
  assert.equal(mine.identity.connector_id, env.connectorId)

  const b = client('bob')
  await b.c.login()
  await rejectsWith(a.c.bindTo({ accessToken: b.c.tokens().access_token }), 'conflict', err => {
    assert.equal(err.status, 409)
    assert.equal(err.error, 'identity_already_bound')
  })
  await rejectsWith(a.c.bindTo({ accessToken: 'not-a-token' }), 'login_required')
})

test('logout forgets the tokens and revokes the refresh token', async () => {
  const a = client('alice')
  const t = await a.c.login()
  await a.c.logout()
  assert.equal(a.c.tokens(), null)
  const stale = client('alice')
  stale.wx.setStorageSync('qiao_tokens', t)
  await rejectsWith(stale.c.refresh(), 'login_required')
  await a.c.logout() // signed out already: nothing to do, no error
})

test('a client the broker does not know is a config error; no answer is a network error', async () => {
  const unknown = client('alice', { clientId: 'no-such-client' })
  await rejectsWith(unknown.c.login(), 'config', err => assert.ok(err.status >= 400 && err.status < 500))

  // A port nothing listens on.
  const srv = require('node:net').createServer()
  await new Promise(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = srv.address().port
  await new Promise(resolve => srv.close(resolve))
  const offline = client('alice', { issuer: 'http://127.0.0.1:' + port })
  await rejectsWith(offline.c.login(), 'network', err => assert.equal(err.status, 0))

  assert.throws(() => createClient({ issuer: env.issuer, wx: fakeWx(env, 'alice') }), err => err instanceof QiaoError && err.kind === 'config')
  assert.throws(() => createClient({ clientId: 'x', wx: fakeWx(env, 'alice') }), err => err instanceof QiaoError && err.kind === 'config')
  assert.throws(() => createClient({ issuer: env.issuer, clientId: 'x' }), err => err instanceof QiaoError && err.kind === 'config')
  const viaEndpoint = createClient({ tokenEndpoint: env.issuer + '/token', clientId: 'x', wx: fakeWx(env, 'alice') })
  assert.equal(viaEndpoint.issuer, env.issuer)
})

test('a 401 insufficient_user_authentication asks for a new sign-in at once, without a refresh', async () => {
  // The demo cannot age a sign-in by 15 minutes: this one answer is canned.
  const a = client('alice')
  await a.c.login()
  const realRequest = a.wx.request
  a.wx.request = opts => {
    if (!opts.url.endsWith('/aged')) return realRequest(opts)
    a.wx.requests.push({ url: opts.url, method: opts.method || 'GET', header: opts.header })
    setImmediate(() => opts.success({
      statusCode: 401,
      data: { error: 'insufficient_user_authentication', max_age: 900 },
      header: { 'WWW-Authenticate': 'Bearer realm="qiao", error="insufficient_user_authentication", max_age=900' }
    }))
  }
  const before = a.wx.requests.length
  await rejectsWith(a.c.request({ url: env.issuer + '/aged' }), 'login_required', err => {
    assert.equal(err.error, 'insufficient_user_authentication')
    assert.equal(err.status, 401)
  })
  assert.deepEqual(a.wx.requests.slice(before).map(r => r.url.replace(env.issuer, '')), ['/aged'])
})
