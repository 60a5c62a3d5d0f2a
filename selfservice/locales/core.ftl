# Names that are the same in every language (Fluent terms, used as { -name }).
-outlook = Outlook
-thunderbird = Thunderbird
-apple-mail = Apple Mail
-imap = IMAP
-smtp = SMTP
