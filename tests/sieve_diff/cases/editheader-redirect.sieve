require ["editheader"];
addheader "X-Forwarded-By" "mailc";
redirect "carol@example.net";
