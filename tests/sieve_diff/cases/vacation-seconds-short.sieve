require ["vacation", "vacation-seconds"];
vacation :seconds 5 :subject "Short" "Away.";
