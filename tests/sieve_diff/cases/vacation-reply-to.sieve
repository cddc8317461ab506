# RFC 5230 §4.5 / Pigeonhole: the reply goes to the envelope sender.
# message: noreply.eml
require "vacation";
vacation :subject "Away" "Away.";
