require "vacation";
vacation :from "bob@example.test" :handle "h1" :subject "Away" "Away.";
