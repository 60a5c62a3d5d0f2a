delete-heading = 「{ $label }」を削除しますか？
delete-warning = このアプリパスワードを使っているメールアプリは、すぐに使えなくなります。この操作は取り消せません。
deleted-flash = アプリパスワード「{ $label }」を削除しました。
already-created-flash = このアプリパスワードはすでに作成済みです。表示は一度だけです。
