require "vacation";
vacation :subject "Away" "Away.";
redirect "carol@example.net";
