# from: MAILER-DAEMON@example.org
require "vacation";
vacation :subject "Away" "Away.";
