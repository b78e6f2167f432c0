package broker

// msgID names a sentence the pages show; catalog has it in each language.
type msgID = string

const (
	msgErrorTitle        msgID = "error_title"
	msgNotFound          msgID = "not_found"
	msgMethodNotAllowed  msgID = "method_not_allowed"
	msgInternal          msgID = "internal"
	msgTooLarge          msgID = "too_large"
	msgBadRequest        msgID = "bad_request"
	msgBadAuthRequest    msgID = "bad_auth_request"
	msgBadCSRF           msgID = "bad_csrf"
	msgUnknownConnector  msgID = "unknown_connector"
	msgUnavailable       msgID = "unavailable"
	msgProviderConfig    msgID = "provider_config"
	msgProviderFailed    msgID = "provider_failed"
	msgBadState          msgID = "bad_state"
	msgNoLoginCookie     msgID = "no_login_cookie"
	msgLoginExpired      msgID = "login_expired"
	msgBadIDTokenHint    msgID = "bad_id_token_hint"
	msgUnknownClient     msgID = "unknown_client"
	msgLogoutNeedsClient msgID = "logout_needs_client"
	msgBadLogoutRedirect msgID = "bad_logout_redirect"
	msgSignedOutTitle    msgID = "signed_out_title"
	msgSignedOut         msgID = "signed_out"
	msgHomeTitle         msgID = "home_title"
	msgChooseTitle       msgID = "choose_title"
	msgChooseLead        msgID = "choose_lead"
	msgNoConnectors      msgID = "no_connectors"
	msgOpenInWeChat      msgID = "open_in_wechat"
	msgOpenOnComputer    msgID = "open_on_computer"
	msgConsentTitle      msgID = "consent_title"
	msgConsentLead       msgID = "consent_lead"
	msgAllow             msgID = "allow"
	msgDeny              msgID = "deny"
	msgScopeOpenID       msgID = "scope_openid"
	msgScopeProfile      msgID = "scope_profile"
	msgScopePhone        msgID = "scope_phone"
	msgScopeOffline      msgID = "scope_offline"
	msgLanguage          msgID = "language"
	msgContinueWith      msgID = "continue_with"
	msgAccountTitle      msgID = "account_title"
	msgAccountLead       msgID = "account_lead"
	msgBound             msgID = "bound"
	msgNotBound          msgID = "not_bound"
	msgBind              msgID = "bind"
	msgUnbind            msgID = "unbind"
	msgBoundAt           msgID = "bound_at"
	msgLastIdentity      msgID = "last_identity"
	msgAlreadyBound      msgID = "already_bound"
	msgConnectorTaken    msgID = "connector_taken"
	msgBoundOK           msgID = "bound_ok"
	msgUnboundOK         msgID = "unbound_ok"
	msgUserID            msgID = "user_id"
	msgSignOut           msgID = "sign_out"
	msgSignInFirst       msgID = "sign_in_first"
	msgReauth            msgID = "reauth"
	msgMiniProgramOnly   msgID = "mini_program_only"
	msgTechnicalDetails  msgID = "technical_details"
	msgSignOutConfirm    msgID = "sign_out_confirm"
	msgTimeZone          msgID = "time_zone"

	msgScopeAccount        msgID = "scope_account"
	msgReauthOtherPerson   msgID = "reauth_other_person"
	msgReauthWith          msgID = "reauth_with"
	msgConfirmBind         msgID = "confirm_bind"
	msgConfirmUnbind       msgID = "confirm_unbind"
	msgCancel              msgID = "cancel"
	msgSignOutEverywhere   msgID = "sign_out_everywhere"
	msgSignedOutEverywhere msgID = "signed_out_everywhere"
	msgTooManyRequests     msgID = "too_many_requests"

	msgBackTo        msgID = "back_to"
	msgTryAgain      msgID = "try_again"
	msgCancelledAt   msgID = "cancelled_at"
	msgMergeTitle    msgID = "merge_title"
	msgMergeLead     msgID = "merge_lead"
	msgMergeMove     msgID = "merge_move"
	msgMergeDelete   msgID = "merge_delete"
	msgMergeConfirm  msgID = "merge_confirm"
	msgMergeAskAdmin msgID = "merge_ask_admin"
	msgMergedOK      msgID = "merged_ok"
	msgMergeExpired  msgID = "merge_expired"
	msgMergeChanged  msgID = "merge_changed"
	msgYourUserID    msgID = "your_user_id"
	msgOtherUserID   msgID = "other_user_id"
	msgUnbindTitle   msgID = "unbind_title"
	msgUnbindConfirm msgID = "unbind_confirm"
)

var catalog = map[string]map[msgID]string{
	"en": {
		msgErrorTitle:        "Something went wrong",
		msgNotFound:          "This page does not exist.",
		msgMethodNotAllowed:  "This address does not accept that kind of request.",
		msgInternal:          "An unexpected error occurred. Please try again.",
		msgTooLarge:          "The request is too large.",
		msgBadRequest:        "The request could not be understood.",
		msgBadAuthRequest:    "The application sent an invalid sign-in request. Please contact the application's developer.",
		msgBadCSRF:           "This form has expired. Please go back and try again.",
		msgUnknownConnector:  "This sign-in method does not exist.",
		msgUnavailable:       "The service is temporarily unavailable. Please try again in a moment.",
		msgProviderConfig:    "This sign-in method is not configured correctly. Please tell the administrator.",
		msgProviderFailed:    "The sign-in at the provider did not succeed.",
		msgBadState:          "This sign-in response is not valid for this browser. Please start the sign-in again.",
		msgNoLoginCookie:     "Your browser no longer has this sign-in (cookies are blocked, or more sign-ins were started since). Please start the sign-in again in the same browser.",
		msgLoginExpired:      "This sign-in has expired or was already completed. Please start again.",
		msgBadIDTokenHint:    "The sign-out request carries an invalid ID token.",
		msgUnknownClient:     "The application is unknown.",
		msgLogoutNeedsClient: "A sign-out redirect needs id_token_hint or client_id.",
		msgBadLogoutRedirect: "The sign-out redirect address is not registered for this application.",
		msgSignedOutTitle:    "Signed out",
		msgSignedOut:         "You have signed out. You can close this page.",
		msgHomeTitle:         "Qiao sign-in service",
		"home_lead":          "Apps send you here to sign in with WeChat, QQ or Weibo: this service checks who you are with the provider and tells the app, which never sees your password. There is nothing to do here unless an app sent you.",
		"home_issuer":        "OpenID Connect issuer",
		"home_account":       "Your account: bound WeChat, QQ and Weibo",
		"home_discovery":     "Discovery document (for developers)",
		"home_developers":    "Developers: point any OpenID Connect client library at the issuer above; the discovery document lists the endpoints, scopes and keys.",
		msgChooseTitle:       "Sign in",
		msgChooseLead:        "Choose how to sign in to",
		msgNoConnectors:      "No sign-in method is available for this application in this browser.",
		msgOpenInWeChat:      "To sign in with WeChat, open this page in WeChat.",
		msgOpenOnComputer:    "Some sign-in methods (such as scanning a QR code) work only on a computer: open this page on a computer to use them.",
		msgConsentTitle:      "Allow access?",
		msgConsentLead:       "wants to:",
		msgAllow:             "Allow",
		msgDeny:              "Deny",
		msgScopeOpenID:       "Know who you are",
		msgScopeProfile:      "See your nickname and avatar",
		msgScopePhone:        "See your phone number",
		msgScopeOffline:      "Stay signed in",
		msgLanguage:          "中文",
		msgContinueWith:      "Continue with %s",
		msgAccountTitle:      "Your accounts",
		msgAccountLead:       "Sign in with any of these accounts as the same person.",
		msgBound:             "Bound",
		msgNotBound:          "Not bound",
		msgBind:              "Bind",
		msgUnbind:            "Unbind",
		msgBoundAt:           "Bound on",
		msgLastIdentity:      "This is your only sign-in account, so it cannot be unbound. Bind another one first.",
		msgAlreadyBound:      "That account already belongs to another user, so it was not bound. Nothing was changed.",
		msgConnectorTaken:    "You already have an account of this provider bound; unbind it first to bind another one. Nothing was changed.",
		msgBoundOK:           "The account is bound.",
		msgUnboundOK:         "The account is unbound.",
		msgUserID:            "User ID",
		msgSignOut:           "Sign out",
		msgSignInFirst:       "Please sign in first.",
		msgReauth:            "For your safety, please sign in again before binding or unbinding an account.",
		msgMiniProgramOnly:   "Bound from the mini-program",
		msgTechnicalDetails:  "Technical details",
		msgSignOutConfirm:    "Sign out of Qiao in this browser? Apps you signed in to may ask you to sign in again.",
		msgTimeZone:          "UTC",

		msgScopeAccount:        "Manage the accounts you sign in with (bind, unbind, sign out everywhere)",
		msgReauthOtherPerson:   "You signed in as a different person, so nothing was changed and you are still signed in as before. To continue, sign in again with one of your own accounts listed below.",
		msgReauthWith:          "Sign in again with %s",
		msgConfirmBind:         "You have signed in again. Bind %s now?",
		msgConfirmUnbind:       "You have signed in again. Unbind %s now?",
		msgCancel:              "Cancel",
		msgSignOutEverywhere:   "Sign out everywhere",
		msgSignedOutEverywhere: "You are signed out on every device and app.",
		msgTooManyRequests:     "Too many requests from your network. Please wait a few seconds and try again.",

		msgBackTo:        "Back to %s",
		msgTryAgain:      "Try again",
		msgCancelledAt:   "The sign-in was cancelled at %s.",
		msgMergeTitle:    "Merge accounts?",
		msgMergeLead:     "The %s account you just signed in with is already another user of its own, with no other sign-in account.",
		msgMergeMove:     "Merging moves it to your account: from then on it signs you in as you.",
		msgMergeDelete:   "The other user (ID %s) is then deleted and its sign-ins in apps end. Apps that kept something under that user will not see it again.",
		msgMergeConfirm:  "Merge into my account",
		msgMergeAskAdmin: "The %s account you just signed in with belongs to another user who has other sign-in accounts too, so it cannot be merged here. Ask the administrator to merge the two users and give them both user IDs. Nothing was changed.",
		msgMergedOK:      "The accounts are merged.",
		msgMergeExpired:  "This merge confirmation has expired or was already used. Nothing was changed.",
		msgMergeChanged:  "The other user changed in the meantime, so nothing was merged. Please bind the account again.",
		msgYourUserID:    "Your user ID",
		msgOtherUserID:   "The other user's ID",
		msgUnbindTitle:   "Unbind this account?",
		msgUnbindConfirm: "You will no longer be able to sign in with this %s account. You can bind it again later.",
	},
	"zh-CN": {
		msgErrorTitle:        "出错了",
		msgNotFound:          "页面不存在。",
		msgMethodNotAllowed:  "此地址不接受这种请求。",
		msgInternal:          "发生意外错误，请重试。",
		msgTooLarge:          "请求过大。",
		msgBadRequest:        "无法理解该请求。",
		msgBadAuthRequest:    "应用发出的登录请求无效，请联系应用开发者。",
		msgBadCSRF:           "表单已过期，请返回重试。",
		msgUnknownConnector:  "该登录方式不存在。",
		msgUnavailable:       "服务暂时不可用，请稍后再试。",
		msgProviderConfig:    "该登录方式配置有误，请告知管理员。",
		msgProviderFailed:    "在第三方平台登录未成功。",
		msgBadState:          "此登录回调对当前浏览器无效，请重新登录。",
		msgNoLoginCookie:     "此浏览器已不再保留本次登录（Cookie 被阻止，或之后又开始了其他登录）。请在同一浏览器中重新登录。",
		msgLoginExpired:      "此次登录已过期或已完成，请重新开始。",
		msgBadIDTokenHint:    "退出请求中的 ID Token 无效。",
		msgUnknownClient:     "未知的应用。",
		msgLogoutNeedsClient: "退出后跳转需要 id_token_hint 或 client_id。",
		msgBadLogoutRedirect: "退出后跳转地址未在该应用中登记。",
		msgSignedOutTitle:    "已退出",
		msgSignedOut:         "您已退出登录，可以关闭此页面。",
		msgHomeTitle:         "Qiao 登录服务",
		"home_lead":          "应用会把您带到这里，用微信、QQ 或微博登录：本服务向登录平台确认您的身份后告知应用，应用看不到您的密码。如果不是应用把您带来的，这里无需操作。",
		"home_issuer":        "OpenID Connect 签发者",
		"home_account":       "我的帐号：已绑定的微信、QQ 和微博",
		"home_discovery":     "发现文档（供开发者）",
		"home_developers":    "开发者：把任何 OpenID Connect 客户端库指向上面的签发者地址即可；发现文档列出了各端点、scope 和密钥。",
		msgChooseTitle:       "登录",
		msgChooseLead:        "选择登录方式，登录",
		msgNoConnectors:      "在此浏览器中，该应用没有可用的登录方式。",
		msgOpenInWeChat:      "如需使用微信登录，请在微信中打开此页面。",
		msgOpenOnComputer:    "部分登录方式（如扫码登录）只能在电脑上使用：请在电脑上打开此页面。",
		msgConsentTitle:      "是否允许访问？",
		msgConsentLead:       "请求以下权限：",
		msgAllow:             "允许",
		msgDeny:              "拒绝",
		msgScopeOpenID:       "识别您的身份",
		msgScopeProfile:      "获取您的昵称和头像",
		msgScopePhone:        "获取您的手机号",
		msgScopeOffline:      "保持登录",
		msgLanguage:          "English",
		msgContinueWith:      "使用%s登录",
		msgAccountTitle:      "我的账号",
		msgAccountLead:       "用以下任一账号登录，都是同一个您。",
		msgBound:             "已绑定",
		msgNotBound:          "未绑定",
		msgBind:              "绑定",
		msgUnbind:            "解除绑定",
		msgBoundAt:           "绑定于",
		msgLastIdentity:      "这是您唯一的登录账号，无法解除绑定。请先绑定其他账号。",
		msgAlreadyBound:      "该账号已属于其他用户，未绑定，未做任何更改。",
		msgConnectorTaken:    "您已绑定了该平台的账号；如需绑定另一个，请先解除绑定。未做任何更改。",
		msgBoundOK:           "账号已绑定。",
		msgUnboundOK:         "账号已解除绑定。",
		msgUserID:            "用户 ID",
		msgSignOut:           "退出登录",
		msgSignInFirst:       "请先登录。",
		msgReauth:            "为了您的账号安全，绑定或解除绑定前请重新登录。",
		msgMiniProgramOnly:   "通过小程序绑定",
		msgTechnicalDetails:  "技术细节",
		msgSignOutConfirm:    "要在此浏览器中退出 Qiao 吗？已登录的应用可能会要求您重新登录。",
		msgTimeZone:          "北京时间",

		msgScopeAccount:        "管理您的登录账号（绑定、解除绑定、在所有设备上退出）",
		msgReauthOtherPerson:   "您登录的是另一个人的账号，因此未做任何更改，您仍以原来的身份登录。如需继续，请用下面列出的您自己的账号重新登录。",
		msgReauthWith:          "使用%s重新登录",
		msgConfirmBind:         "您已重新登录。现在绑定%s吗？",
		msgConfirmUnbind:       "您已重新登录。现在解除绑定%s吗？",
		msgCancel:              "取消",
		msgSignOutEverywhere:   "在所有设备上退出",
		msgSignedOutEverywhere: "您已在所有设备和应用上退出登录。",
		msgTooManyRequests:     "来自您网络的请求过多，请稍等几秒后重试。",

		msgBackTo:        "返回%s",
		msgTryAgain:      "重试",
		msgCancelledAt:   "已在%s取消登录。",
		msgMergeTitle:    "合并账号？",
		msgMergeLead:     "您刚刚登录的%s账号已是另一个独立用户，且没有绑定其他登录账号。",
		msgMergeMove:     "合并后，该账号将移到您的账号下，以后用它登录的就是您。",
		msgMergeDelete:   "另一个用户（ID %s）随后会被删除，它在各应用中的登录随即失效；应用以该用户保存的内容将不再可见。",
		msgMergeConfirm:  "合并到我的账号",
		msgMergeAskAdmin: "您刚刚登录的%s账号属于另一个用户，该用户还绑定了其他登录账号，因此无法在此合并。请联系管理员合并这两个用户，并提供下面两个用户 ID。未做任何更改。",
		msgMergedOK:      "账号已合并。",
		msgMergeExpired:  "此合并确认已过期或已使用，未做任何更改。",
		msgMergeChanged:  "另一个用户在此期间发生了变化，未进行合并。请重新绑定该账号。",
		msgYourUserID:    "您的用户 ID",
		msgOtherUserID:   "另一个用户的 ID",
		msgUnbindTitle:   "解除绑定此账号？",
		msgUnbindConfirm: "解除绑定后，将无法再用此%s账号登录。之后可以重新绑定。",
	},
}
