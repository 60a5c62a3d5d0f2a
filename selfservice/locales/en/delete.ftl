delete-heading = Delete “{ $label }”?
delete-warning = Mail apps that use this app password stop working at once. This cannot be undone.
deleted-flash = Deleted the app password “{ $label }”.
already-created-flash = That app password was already created; it is shown only once.
