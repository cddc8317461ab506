require ["imap4flags", "fileinto"];
addflag "\\Seen";
fileinto :flags ["\\Answered", "$Label1"] "Labelled";
