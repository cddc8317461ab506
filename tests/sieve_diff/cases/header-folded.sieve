# message: list.eml
require "fileinto";
if header :is "list-id" "Rust users <rust-users.lists.example.org>" { fileinto "ListId"; }
