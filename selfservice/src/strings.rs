//! Every text the page shows, in one table per language.
//!
//! Languages: English ([`EN`]) and Japanese ([`JA`]), chosen by `language` in `web.toml`. To add
//! one, copy [`EN`] to a new constant, translate the values (keep the `{name}` placeholders: a
//! test compares them), and accept its code in `webconfig.rs`. Placeholders are
//! filled with [`fill`]; the values put in are HTML-escaped by the caller.

/// The UI texts of one language.
#[derive(Debug)]
pub struct Strings {
    /// `lang` attribute of the pages.
    pub lang: &'static str,
    /// Site title, in every page's `<title>` and header.
    pub app_title: &'static str,
    /// Header line: `{user}`.
    pub signed_in_as: &'static str,
    /// Button.
    pub sign_out: &'static str,

    /// Sign-in page heading.
    pub signin_heading: &'static str,
    /// Sign-in page text.
    pub signin_intro: &'static str,
    /// Field label.
    pub user_label: &'static str,
    /// Field label.
    pub password_label: &'static str,
    /// Button.
    pub signin_button: &'static str,
    /// Error.
    pub signin_failed: &'static str,
    /// Error: `{minutes}`.
    pub signin_rate_limited: &'static str,
    /// Error.
    pub signin_unavailable: &'static str,
    /// Heading when normal-password sign-in is not allowed from the client's network.
    pub off_campus_heading: &'static str,
    /// Text for the same.
    pub off_campus_text: &'static str,
    /// Heading when the reverse proxy did not sign the user in.
    pub not_signed_in_heading: &'static str,
    /// Text for the same.
    pub not_signed_in_text: &'static str,
    /// After signing out.
    pub signed_out: &'static str,
    /// Link back to the sign-in page.
    pub sign_in_again: &'static str,

    /// List page heading.
    pub list_heading: &'static str,
    /// List page text.
    pub list_intro: &'static str,
    /// No app passwords yet.
    pub list_empty: &'static str,
    /// Link to the create form.
    pub create_link: &'static str,
    /// Card field.
    pub created_label: &'static str,
    /// Card field.
    pub last_used_label: &'static str,
    /// Never used.
    pub never_used: &'static str,
    /// `{ip}` of the last use.
    pub last_used_from: &'static str,
    /// `{service}` of the last use.
    pub last_used_via: &'static str,
    /// The last-use address is on campus.
    pub on_campus: &'static str,
    /// The last-use address is off campus.
    pub off_campus: &'static str,
    /// Card field.
    pub expires_label: &'static str,
    /// No expiry.
    pub never_expires: &'static str,
    /// Badge on expired app passwords.
    pub expired_badge: &'static str,
    /// Card field.
    pub services_label: &'static str,
    /// No service restriction.
    pub all_services: &'static str,
    /// Button/link; the hidden suffix names the app password for screen readers.
    pub delete_button: &'static str,
    /// Time zone suffix of displayed times.
    pub utc: &'static str,

    /// Create page heading.
    pub new_heading: &'static str,
    /// Field label.
    pub name_label: &'static str,
    /// Field hint.
    pub name_hint: &'static str,
    /// Fieldset legend.
    pub services_legend: &'static str,
    /// Fieldset hint.
    pub services_hint: &'static str,
    /// Descriptions of well-known services (others are shown by name).
    pub service_names: &'static [(&'static str, &'static str)],
    /// Field label.
    pub expiry_label: &'static str,
    /// Expiry choices: value for `apppw create --expires` ("" = never) and text.
    pub expiry_choices: &'static [(&'static str, &'static str)],
    /// Button.
    pub create_button: &'static str,
    /// Link.
    pub cancel: &'static str,
    /// Error summary heading.
    pub error_summary: &'static str,
    /// Error.
    pub name_empty: &'static str,
    /// Error.
    pub name_invalid: &'static str,
    /// Error: `{label}`.
    pub name_taken: &'static str,
    /// Error.
    pub service_invalid: &'static str,
    /// Error.
    pub expiry_invalid: &'static str,
    /// Error: `{max}`.
    pub too_many: &'static str,
    /// Error.
    pub create_rate_limited: &'static str,

    /// Heading of the one-time display: `{label}`.
    pub created_heading: &'static str,
    /// The warning, emphasised.
    pub created_once: &'static str,
    /// How to use it.
    pub created_how: &'static str,
    /// `{user}` to enter in the mail app.
    pub created_user: &'static str,
    /// Label of the password box for screen readers.
    pub created_password_label: &'static str,
    /// Button.
    pub copy_button: &'static str,
    /// Announced after copying.
    pub copied: &'static str,
    /// Link back to the list.
    pub done_link: &'static str,

    /// Confirmation heading: `{label}`.
    pub delete_heading: &'static str,
    /// Confirmation text.
    pub delete_warning: &'static str,
    /// Flash after deleting: `{label}`.
    pub deleted_flash: &'static str,
    /// Flash after a repeated create form (reload of the result page).
    pub already_created_flash: &'static str,

    /// Error page.
    pub csrf_heading: &'static str,
    /// Error page.
    pub csrf_text: &'static str,
    /// Error page.
    pub not_found_heading: &'static str,
    /// Error page.
    pub not_found_text: &'static str,
    /// Error page.
    pub forbidden_heading: &'static str,
    /// Error page.
    pub forbidden_text: &'static str,
    /// Error page.
    pub error_heading: &'static str,
    /// Error page.
    pub error_text: &'static str,
    /// Error page.
    pub too_large_heading: &'static str,

    /// E-mail subject after a create.
    pub mail_created_subject: &'static str,
    /// E-mail body after a create: `{user}`, `{label}`, `{time}`, `{ip}`.
    pub mail_created_body: &'static str,
    /// E-mail subject after a delete.
    pub mail_deleted_subject: &'static str,
    /// E-mail body after a delete: `{user}`, `{label}`, `{time}`, `{ip}`.
    pub mail_deleted_body: &'static str,
}

/// English.
pub const EN: Strings = Strings {
    lang: "en",
    app_title: "App passwords",
    signed_in_as: "Signed in as {user}",
    sign_out: "Sign out",

    signin_heading: "Sign in",
    signin_intro: "Sign in with your user name and normal password to manage the app passwords \
                   of your mail account.",
    user_label: "User name",
    password_label: "Password",
    signin_button: "Sign in",
    signin_failed: "The user name or password is not right.",
    signin_rate_limited: "Too many failed sign-ins. Try again in {minutes} minutes.",
    signin_unavailable: "Signing in is not possible right now. Try again later.",
    off_campus_heading: "Not available from this network",
    off_campus_text: "Signing in with your normal password works only from the campus network. \
                      Connect to the campus network (or its VPN) and try again.",
    not_signed_in_heading: "Not signed in",
    not_signed_in_text: "Open this page through the university sign-in page.",
    signed_out: "You are signed out.",
    sign_in_again: "Sign in again",

    list_heading: "Your app passwords",
    list_intro: "Mail apps that cannot do multi-factor sign-in (Outlook, Thunderbird, Apple Mail, \
                 phones) need an app password instead of your normal password. Create one for \
                 each device, and delete it when you stop using the device.",
    list_empty: "You have no app passwords yet.",
    create_link: "Create an app password",
    created_label: "Created",
    last_used_label: "Last used",
    never_used: "Never",
    last_used_from: "from {ip}",
    last_used_via: "via {service}",
    on_campus: "campus network",
    off_campus: "outside the campus network",
    expires_label: "Expires",
    never_expires: "Never",
    expired_badge: "Expired",
    services_label: "Services",
    all_services: "All",
    delete_button: "Delete",
    utc: "UTC",

    new_heading: "Create an app password",
    name_label: "Name",
    name_hint: "The device or app it is for, for example \u{201c}iPhone\u{201d} or \
                \u{201c}Thunderbird at home\u{201d}.",
    services_legend: "Only for these services (optional)",
    services_hint: "Leave all unticked to allow every service.",
    service_names: &[
        ("imap", "IMAP: reading mail"),
        ("pop3", "POP3: downloading mail"),
        ("smtp", "SMTP: sending mail"),
        ("submission", "Submission: sending mail"),
        ("sieve", "Sieve: mail filters"),
    ],
    expiry_label: "Expires",
    expiry_choices: &[
        ("", "Never"),
        ("30d", "In 30 days"),
        ("90d", "In 90 days"),
        ("365d", "In one year"),
    ],
    create_button: "Create",
    cancel: "Cancel",
    error_summary: "There is a problem",
    name_empty: "Enter a name, for example the device it is for.",
    name_invalid: "The name must be at most 64 characters, without control characters.",
    name_taken: "You already have an app password named \u{201c}{label}\u{201d}. Choose another \
                 name, or delete the old one first.",
    service_invalid: "Choose services from the list.",
    expiry_invalid: "Choose an expiry from the list.",
    too_many: "You have {max} app passwords, the most allowed. Delete one you no longer use \
               first.",
    create_rate_limited: "You have created many app passwords in a short time. Try again later.",

    created_heading: "Your new app password for \u{201c}{label}\u{201d}",
    created_once: "You will not see this password again.",
    created_how: "Enter it now as the password in your mail app, instead of your normal \
                  password. Spaces do not matter. If you lose it, delete it and create a new one.",
    created_user: "User name: {user}",
    created_password_label: "App password",
    copy_button: "Copy",
    copied: "Copied",
    done_link: "Done",

    delete_heading: "Delete \u{201c}{label}\u{201d}?",
    delete_warning: "Mail apps that use this app password stop working at once. This cannot be \
                     undone.",
    deleted_flash: "Deleted the app password \u{201c}{label}\u{201d}.",
    already_created_flash: "That app password was already created; it is shown only once.",

    csrf_heading: "This form has expired",
    csrf_text: "Go back, reload the page and try again.",
    not_found_heading: "Not found",
    not_found_text: "There is no such page or app password.",
    forbidden_heading: "Access refused",
    forbidden_text: "This request is not allowed.",
    error_heading: "Something went wrong",
    error_text: "Your app passwords cannot be managed right now. Try again later; if it keeps \
                 failing, contact the IT service desk.",
    too_large_heading: "Request too large",

    mail_created_subject: "New app password for your mail account",
    mail_created_body: "Hello {user},\n\nan app password named \"{label}\" was created for your \
                        mail account on {time} (from {ip}).\n\nIf this was not you, delete it on \
                        the app passwords page and contact the IT service desk.\n",
    mail_deleted_subject: "App password deleted",
    mail_deleted_body: "Hello {user},\n\nthe app password named \"{label}\" of your mail account \
                        was deleted on {time} (from {ip}). Mail apps that used it can no longer \
                        sign in.\n\nIf this was not you, contact the IT service desk.\n",
};

/// Japanese.
pub const JA: Strings = Strings {
    lang: "ja",
    app_title: "アプリパスワード",
    signed_in_as: "{user} でサインイン中",
    sign_out: "サインアウト",

    signin_heading: "サインイン",
    signin_intro: "メールアカウントのアプリパスワードを管理するには、ユーザー名と通常のパスワードで\
                   サインインしてください。",
    user_label: "ユーザー名",
    password_label: "パスワード",
    signin_button: "サインイン",
    signin_failed: "ユーザー名またはパスワードが正しくありません。",
    signin_rate_limited: "サインインの失敗が多すぎます。{minutes} 分後にもう一度お試しください。",
    signin_unavailable: "現在サインインできません。しばらくしてからもう一度お試しください。",
    off_campus_heading: "このネットワークからは利用できません",
    off_campus_text: "通常のパスワードでのサインインは学内ネットワークからのみ可能です。\
                      学内ネットワーク(または VPN)に接続してから、もう一度お試しください。",
    not_signed_in_heading: "サインインしていません",
    not_signed_in_text: "大学の認証ページからこのページを開いてください。",
    signed_out: "サインアウトしました。",
    sign_in_again: "もう一度サインイン",

    list_heading: "アプリパスワード一覧",
    list_intro: "多要素認証に対応していないメールアプリ(Outlook、Thunderbird、Apple Mail、\
                 スマートフォンなど)では、通常のパスワードの代わりにアプリパスワードを使います。\
                 端末ごとに作成し、その端末を使わなくなったら削除してください。",
    list_empty: "アプリパスワードはまだありません。",
    create_link: "アプリパスワードを作成",
    created_label: "作成日時",
    last_used_label: "最終使用",
    never_used: "未使用",
    last_used_from: "接続元 {ip}",
    last_used_via: "{service} 経由",
    on_campus: "学内ネットワーク",
    off_campus: "学外ネットワーク",
    expires_label: "有効期限",
    never_expires: "なし",
    expired_badge: "期限切れ",
    services_label: "サービス",
    all_services: "すべて",
    delete_button: "削除",
    utc: "UTC",

    new_heading: "アプリパスワードの作成",
    name_label: "名前",
    name_hint: "使う端末やアプリの名前。例:「iPhone」「自宅の Thunderbird」",
    services_legend: "利用するサービスを限定する(任意)",
    services_hint: "すべてのサービスで使う場合は、何もチェックしないでください。",
    service_names: &[
        ("imap", "IMAP:メールの閲覧"),
        ("pop3", "POP3:メールの受信"),
        ("smtp", "SMTP:メールの送信"),
        ("submission", "Submission:メールの送信"),
        ("sieve", "Sieve:メールのフィルター"),
    ],
    expiry_label: "有効期限",
    expiry_choices: &[
        ("", "なし"),
        ("30d", "30 日後"),
        ("90d", "90 日後"),
        ("365d", "1 年後"),
    ],
    create_button: "作成",
    cancel: "キャンセル",
    error_summary: "入力内容に問題があります",
    name_empty: "名前を入力してください(例:使う端末の名前)。",
    name_invalid: "名前は 64 文字以内で、制御文字を含めないでください。",
    name_taken: "「{label}」という名前のアプリパスワードはすでにあります。別の名前にするか、\
                 先に古いものを削除してください。",
    service_invalid: "サービスは一覧から選んでください。",
    expiry_invalid: "有効期限は一覧から選んでください。",
    too_many: "アプリパスワードが上限の {max} 個に達しています。使っていないものを先に削除して\
               ください。",
    create_rate_limited: "短時間に多くのアプリパスワードが作成されました。しばらくしてから\
                          もう一度お試しください。",

    created_heading: "「{label}」の新しいアプリパスワード",
    created_once: "このパスワードは二度と表示されません。",
    created_how: "今すぐメールアプリのパスワード欄に、通常のパスワードの代わりに入力してください。\
                  スペースはあってもなくてもかまいません。忘れた場合は削除して新しく作成して\
                  ください。",
    created_user: "ユーザー名:{user}",
    created_password_label: "アプリパスワード",
    copy_button: "コピー",
    copied: "コピーしました",
    done_link: "完了",

    delete_heading: "「{label}」を削除しますか?",
    delete_warning: "このアプリパスワードを使っているメールアプリは、すぐに使えなくなります。\
                     この操作は取り消せません。",
    deleted_flash: "アプリパスワード「{label}」を削除しました。",
    already_created_flash: "このアプリパスワードはすでに作成済みです。表示は一度だけです。",

    csrf_heading: "このフォームは有効期限が切れています",
    csrf_text: "前のページに戻り、ページを再読み込みしてからもう一度お試しください。",
    not_found_heading: "見つかりません",
    not_found_text: "該当するページまたはアプリパスワードはありません。",
    forbidden_heading: "アクセスが拒否されました",
    forbidden_text: "このリクエストは許可されていません。",
    error_heading: "エラーが発生しました",
    error_text: "現在アプリパスワードを管理できません。しばらくしてからもう一度お試しください。\
                 解決しない場合は IT サービスデスクにお問い合わせください。",
    too_large_heading: "リクエストが大きすぎます",

    mail_created_subject: "メールアカウントに新しいアプリパスワードが作成されました",
    mail_created_body: "{user} 様\n\n{time} に({ip} から)、メールアカウントにアプリパスワード\
                        「{label}」が作成されました。\n\n心当たりがない場合は、アプリパスワードの\
                        ページで削除し、IT サービスデスクにご連絡ください。\n",
    mail_deleted_subject: "アプリパスワードが削除されました",
    mail_deleted_body: "{user} 様\n\n{time} に({ip} から)、メールアカウントのアプリパスワード\
                        「{label}」が削除されました。このパスワードを使っていたメールアプリは\
                        サインインできなくなります。\n\n心当たりがない場合は、IT サービスデスクに\
                        ご連絡ください。\n",
};

/// Replaces `{name}` placeholders with values.
#[must_use]
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `{name}` placeholders of a text, sorted.
    fn placeholders(text: &str) -> Vec<&str> {
        let mut found: Vec<&str> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        found.sort_unstable();
        found
    }

    /// The top-level fields of a table with their texts, from its pretty debug dump (where a
    /// field is a line indented by exactly four spaces; the lists are compared separately).
    fn texts(strings: &Strings) -> Vec<(String, String)> {
        let dump = format!("{strings:#?}");
        dump.lines()
            .filter(|line| line.starts_with("    ") && !line.starts_with("     "))
            .filter_map(|line| {
                let (key, value) = line.trim().split_once(": ")?;
                Some((key.to_owned(), value.trim_end_matches(',').to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_translation_keeps_the_placeholders() {
        let en = texts(&EN);
        let ja = texts(&JA);
        assert_eq!(en.len(), ja.len());
        for ((key, en_text), (ja_key, ja_text)) in en.iter().zip(&ja) {
            assert_eq!(key, ja_key);
            assert_eq!(
                placeholders(en_text),
                placeholders(ja_text),
                "{key}: {en_text} / {ja_text}"
            );
        }
        assert_eq!(EN.service_names.len(), JA.service_names.len());
        for ((a, _), (b, _)) in EN.service_names.iter().zip(JA.service_names) {
            assert_eq!(a, b);
        }
        for ((a, _), (b, _)) in EN.expiry_choices.iter().zip(JA.expiry_choices) {
            assert_eq!(a, b);
        }
        assert_eq!(EN.expiry_choices.len(), JA.expiry_choices.len());
    }

    #[test]
    fn fill_replaces_every_placeholder() {
        assert_eq!(
            fill("a {x} b {y} {x}", &[("x", "1"), ("y", "<2>")]),
            "a 1 b <2> 1"
        );
    }
}
