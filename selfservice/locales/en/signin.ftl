signin-heading = Sign in
signin-intro = Sign in with your user name and normal password to manage the app passwords of your mail account.
user-label = User name
password-label = Password
signin-button = Sign in
signing-in = Signing in…
signin-failed = The user name or password is not right.
signin-rate-limited = Too many failed sign-ins. Try again in { $minutes ->
        [one] one minute
       *[other] { $minutes } minutes
    }.
signin-unavailable = Signing in is not possible right now. Try again later.
signin-expired = The sign-in form had expired. Enter your password again.
session-ended = Your session had ended, so nothing was changed. Sign in again.
off-campus-heading = Not available from this network
off-campus-text = Signing in with your normal password works only from the campus network. Connect to the campus network (or its VPN) and try again.
not-signed-in-heading = Not signed in
not-signed-in-text = Open this page through the university sign-in page.
signed-out = You are signed out.
sign-in-again = Sign in again
