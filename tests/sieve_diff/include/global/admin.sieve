require ["imap4flags"];
addflag "$Seen-by-admin";
