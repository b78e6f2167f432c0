'use strict'
// The profile helpers against a real broker and the WeChat simulator:
// the Go test sdk_test.go starts a `qiao demo` and sets QIAO_ISSUER and
// QIAO_WECHAT_URL. Run: node --test test/profile.test.js

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const zlib = require('node:zlib')
const { createProfile, ProfileError } = require('../profile')

const env = {
  issuer: process.env.QIAO_ISSUER,
  wechatURL: process.env.QIAO_WECHAT_URL,
  appid: process.env.QIAO_MINI_APPID || 'wxd3e0000000000003',
  clientId: process.env.QIAO_CLIENT_ID || 'miniprogram'
}

// A 1×1 PNG, made here so that the test carries no binary file.
function png () {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = b => { let c = 0xffffffff; for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0 }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type), data])
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0])
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'binary'), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.from([0, 255, 0, 0]))), chunk('IEND', Buffer.alloc(0))])
}

// fakeWx: request() is fetch, uploadFile() a multipart POST of the file.
const fakeWx = {
  request (o) {
    fetch(o.url, { method: o.method, headers: o.header, body: o.data === undefined ? undefined : JSON.stringify(o.data) })
      .then(async r => o.success({ statusCode: r.status, data: await r.text() }), err => o.fail({ errMsg: String(err) }))
  },
  uploadFile (o) {
    const fd = new FormData()
    fd.append(o.name, new Blob([fs.readFileSync(o.filePath)]), path.basename(o.filePath))
    fetch(o.url, { method: 'POST', headers: o.header, body: fd })
      .then(async r => o.success({ statusCode: r.status, data: await r.text() }), err => o.fail({ errMsg: String(err) }))
  }
}

async function accountToken (person) {
  const code = (await (await fetch(env.wechatURL + '/sandbox/wx.login?' + new URLSearchParams({ appid: env.appid, person }), { method: 'POST' })).json()).code
  const r = await fetch(env.issuer + '/token', {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: code,
      subject_token_type: 'urn:qiao:params:oauth:token-type:wechat-js-code',
      subject_issuer: 'wechat_miniprogram',
      client_id: env.clientId,
      scope: 'openid profile account'
    })
  })
  const j = await r.json()
  assert.equal(r.status, 200, JSON.stringify(j))
  return j.access_token
}

test('setName and setPicture: the person\'s own profile reaches userinfo', async () => {
  const token = await accountToken('carol')
  const profile = createProfile({ issuer: env.issuer, wx: fakeWx, accessToken: () => token })
  const me = await profile.setName('  卡罗尔\u200b ')
  assert.equal(me.name, '卡罗尔')
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qiao-')), 'avatar.png')
  fs.writeFileSync(file, png())
  const after = await profile.setPicture(file)
  assert.match(after.picture, /\/pictures\//)
  const info = await (await fetch(env.issuer + '/userinfo', { headers: { Authorization: 'Bearer ' + token } })).json()
  assert.equal(info.name, '卡罗尔')
  assert.equal(info.picture, after.picture)
  const img = await fetch(after.picture)
  assert.equal(img.headers.get('content-type'), 'image/png')
  assert.deepEqual(Buffer.from(await img.arrayBuffer()), png())

  fs.writeFileSync(file, '<svg onload="alert(1)"/>')
  await assert.rejects(profile.setPicture(file), err => err instanceof ProfileError && err.kind === 'invalid' && err.status === 415)
  const removed = await profile.removePicture()
  assert.equal(removed.picture, undefined)
})

test('without the account scope: login_required', async () => {
  const profile = createProfile({ issuer: env.issuer, wx: fakeWx, accessToken: () => 'not-a-token' })
  await assert.rejects(profile.setName('x'), err => err.kind === 'login_required')
  await assert.rejects(createProfile({ issuer: env.issuer, wx: fakeWx, accessToken: () => '' }).setName('x'), err => err.kind === 'login_required')
})
