# Notification mails (plain text). An administrator can change them in the folder of
# `[site] locales`, e.g. /etc/apppw/locales/en/mail.ftl.
mail-created-subject = New app password for your mail account
mail-created-body =
    Hello { $user },

    an app password named “{ $label }” was created for your mail account on { $time } (from { $ip }).

    If this was not you, delete it on the app passwords page and contact the IT service desk.
mail-deleted-subject = App password deleted
mail-deleted-body =
    Hello { $user },

    the app password named “{ $label }” of your mail account was deleted on { $time } (from { $ip }). Mail apps that used it can no longer sign in.

    If this was not you, contact the IT service desk.
