// Types for the Qiao mini-program SDK (index.js).

export type QiaoErrorKind = 'busy' | 'login_required' | 'network' | 'config' | 'conflict' | 'server'

export class QiaoError extends Error {
  name: 'QiaoError'
  /** What to do: retry later (busy), sign in again (login_required), ... */
  kind: QiaoErrorKind
  /** HTTP status; 0 when there was no answer. */
  status: number
  /** The broker's OAuth error code, e.g. invalid_grant. */
  error: string
  description: string
  /** Seconds to wait, when the server said (Retry-After); else 0. */
  retryAfter: number
  cause?: unknown
}

/** The subset of the wx API the SDK uses. */
export interface WxLike {
  login(options: { success(res: { code?: string, errMsg?: string }): void, fail(err: { errMsg?: string }): void }): void
  request(options: WxRequestOptions & { success(res: WxResponse): void, fail(err: { errMsg?: string }): void }): void
  getStorageSync(key: string): any
  setStorageSync(key: string, value: any): void
  removeStorageSync?(key: string): void
}

export interface WxRequestOptions {
  url: string
  method?: string
  data?: string | object | ArrayBuffer
  header?: Record<string, string>
  dataType?: string
  responseType?: string
  timeout?: number
}

export interface WxResponse {
  statusCode: number
  data: any
  header: Record<string, string>
}

export interface Tokens {
  access_token: string
  token_type: string
  /** Milliseconds since the epoch; 0 when unknown. */
  expires_at: number
  refresh_token: string
  id_token: string
  scope: string
}

export interface ClientOptions {
  /** The broker's issuer URL, e.g. https://sso.example.com */
  issuer?: string
  /** The token endpoint, when it is not {issuer}/token. */
  tokenEndpoint?: string
  /** The broker client id of the mini-program. */
  clientId: string
  /** The wechat_miniprogram connector id; default 'wechat_miniprogram'. */
  connectorId?: string
  /** Default 'openid profile offline_access'; add 'account' for bindTo. */
  scope?: string
  /** wx storage key of the tokens; default 'qiao_tokens'. */
  storageKey?: string
  /** The wx object; default the global wx. */
  wx?: WxLike
  /** wx.request timeout in ms for the SDK's own calls. */
  timeout?: number
}

export interface Client {
  login(options?: { phoneCode?: string }): Promise<Tokens>
  refresh(): Promise<Tokens>
  request(options: WxRequestOptions): Promise<WxResponse>
  bindTo(options?: { accessToken?: string, connectorId?: string }): Promise<{ identity: { connector_id: string, type: string, display_name: string, picture: string, bound_at: string }, created: boolean }>
  logout(): Promise<void>
  tokens(): Tokens | null
  claims(): Record<string, any> | null
  readonly issuer: string
  readonly tokenEndpoint: string
  /** Scan login: call in onLoad of the scan_login page. */
  scanLogin(query: { scene?: string }): Promise<ScanApproval>
  /** The person's own name ("" clears); needs the scope account. */
  setName(name: string): Promise<Record<string, any>>
  /** The person's own picture: a file path (chooseAvatar); PNG, JPEG or WebP, at most 256 KB. */
  setPicture(filePath: string): Promise<Record<string, any>>
  removePicture(): Promise<Record<string, any>>
}

export interface ScanApproval {
  scene: string
  clientId: string
  clientName: string
  connectorId: string
  /** ms since the epoch */
  createdAt: number
  expiresAt: number
  confirm(): Promise<'confirmed'>
  refuse(): Promise<'refused'>
}

export function createClient(options: ClientOptions): Client

