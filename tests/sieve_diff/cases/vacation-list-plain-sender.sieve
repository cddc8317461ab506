# A list message from an ordinary-looking sender: List-Id alone suppresses it.
# message: list.eml
# user: rust-users@lists.example.org
require "vacation";
vacation :subject "Away" "Away.";
