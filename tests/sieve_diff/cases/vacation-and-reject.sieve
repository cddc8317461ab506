require ["vacation", "reject"];
vacation :subject "Away" "Away.";
reject "no";
