# RFC 5230 §4.5: no reply when the user is not in To/Cc (or :addresses).
# user: zoe@example.test
# to: zoe@example.test
require "vacation";
vacation :subject "Away" "Away.";
