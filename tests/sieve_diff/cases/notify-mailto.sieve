require "enotify";
notify :message "New mail" "mailto:bob@example.net";
