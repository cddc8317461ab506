require ["vacation", "vacation-seconds"];
vacation :seconds 172800 :subject "Back soon" "Away.";
