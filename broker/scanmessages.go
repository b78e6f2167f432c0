package broker

// The scan login's sentences, merged into catalog once at start-up (kept
// apart so that the catalog's other entries stay as they are).
const (
	msgScanTitle        msgID = "scan_title"
	msgScanLead         msgID = "scan_lead"
	msgScanApproving    msgID = "scan_approving"
	msgScanMade         msgID = "scan_made"
	msgScanWaiting      msgID = "scan_waiting"
	msgScanScanned      msgID = "scan_scanned"
	msgScanConfirmed    msgID = "scan_confirmed"
	msgScanRefused      msgID = "scan_refused"
	msgScanExpired      msgID = "scan_expired"
	msgScanNewCode      msgID = "scan_new_code"
	msgScanBack         msgID = "scan_back"
	msgScanContinue     msgID = "scan_continue"
	msgScanWarning      msgID = "scan_warning"
	msgScanUnavailable  msgID = "scan_unavailable"
	msgScanUnknown      msgID = "scan_unknown"
	msgScanOtherBrowser msgID = "scan_other_browser"
	msgScanCodeAlt      msgID = "scan_code_alt"
)

var scanCatalog = map[string]map[msgID]string{
	"en": {
		msgScanTitle:        "Scan with WeChat",
		msgScanLead:         "Scan this code with WeChat to sign in to",
		msgScanApproving:    "You are signing in to %s with %s.",
		msgScanMade:         "Code made at %s; it expires at %s.",
		msgScanWaiting:      "Waiting for the scan…",
		msgScanScanned:      "Scanned. Confirm the sign-in on your phone.",
		msgScanConfirmed:    "Confirmed. Signing you in…",
		msgScanRefused:      "The sign-in was refused on the phone.",
		msgScanExpired:      "This code has expired.",
		msgScanNewCode:      "Show a new code",
		msgScanBack:         "Back to the app",
		msgScanContinue:     "Continue",
		msgScanWarning:      "Only scan a code that you opened yourself, on this computer. Never scan a code someone sent you: it would sign them in as you.",
		msgScanUnavailable:  "Signing in by scanning is unavailable right now. Please choose another way to sign in.",
		msgScanUnknown:      "This sign-in code is unknown or has been removed. Please start again from the app.",
		msgScanOtherBrowser: "This sign-in was started in another browser. Please start again from the app in this browser.",
		msgScanCodeAlt:      "Mini-program code to scan with WeChat",
	},
	"zh-CN": {
		msgScanTitle:        "微信扫码登录",
		msgScanLead:         "请用微信扫描此小程序码，登录",
		msgScanApproving:    "您正在使用%[2]s登录 %[1]s。",
		msgScanMade:         "此码生成于 %s，将于 %s 失效。",
		msgScanWaiting:      "等待扫码…",
		msgScanScanned:      "已扫码，请在手机上确认登录。",
		msgScanConfirmed:    "已确认，正在登录…",
		msgScanRefused:      "已在手机上拒绝登录。",
		msgScanExpired:      "此码已失效。",
		msgScanNewCode:      "刷新二维码",
		msgScanBack:         "返回应用",
		msgScanContinue:     "继续",
		msgScanWarning:      "只扫描您自己在这台电脑上打开的码。切勿扫描别人发给您的码：那会让对方以您的身份登录。",
		msgScanUnavailable:  "扫码登录暂时不可用，请选择其他登录方式。",
		msgScanUnknown:      "此登录码不存在或已被移除，请从应用重新开始。",
		msgScanOtherBrowser: "此登录是在另一个浏览器中发起的，请在本浏览器中从应用重新开始。",
		msgScanCodeAlt:      "用微信扫描的小程序码",
	},
}

func init() {
	for lang, m := range scanCatalog {
		for k, v := range m {
			catalog[lang][k] = v
		}
	}
}
