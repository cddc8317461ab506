# to: bob@example.test
# message: plain.eml
require "vacation";
vacation :addresses ["bob@example.test", "robert@example.test"] :subject "Away" "Away.";
