# from: bob@example.test
require "vacation";
vacation :subject "Away" "Away.";
