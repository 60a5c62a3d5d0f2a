# Shown on every page.
language-name = English
app-title = App passwords
# How times are shown (strftime, in the site's time zone): 1 December 2026, 22:39 JST
datetime-format = %-d %B %Y, %H:%M %Z
signed-in-as = Signed in as { $user }
sign-out = Sign out
help-link = Help
language-switch = Language
error-summary = There is a problem
cancel = Cancel
back-to-list = Back to your app passwords
