require ["imap4flags", "fileinto"];
setflag "\\Answered";
fileinto "INBOX";
