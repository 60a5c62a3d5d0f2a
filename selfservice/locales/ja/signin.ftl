signin-heading = サインイン
signin-intro = メールアカウントのアプリパスワードを管理するには、ユーザー名と通常のパスワードでサインインしてください。
user-label = ユーザー名
password-label = パスワード
signin-button = サインイン
signing-in = サインインしています…
signin-failed = ユーザー名またはパスワードが正しくありません。
signin-rate-limited = サインインの失敗が多すぎます。{ $minutes ->
       *[other] { $minutes } 分
    }後にもう一度お試しください。
signin-unavailable = 現在サインインできません。しばらくしてからもう一度お試しください。
signin-expired = サインインのフォームの有効期限が切れていました。パスワードをもう一度入力してください。
session-ended = セッションが終了していたため、何も変更されていません。もう一度サインインしてください。
off-campus-heading = このネットワークからは利用できません
off-campus-text = 通常のパスワードでのサインインは学内ネットワークからのみ可能です。学内ネットワーク（または VPN）に接続してから、もう一度お試しください。
not-signed-in-heading = サインインしていません
not-signed-in-text = 大学の認証ページからこのページを開いてください。
signed-out = サインアウトしました。
sign-in-again = もう一度サインイン
