# message: list.eml
# from: rust-users-bounces@lists.example.org
require "vacation";
vacation :subject "Away" "Away.";
