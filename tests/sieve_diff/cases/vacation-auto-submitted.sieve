# message: autosub.eml
# from: carol@example.net
require "vacation";
vacation :subject "Away" "Away.";
