require ["imap4flags", "fileinto"];
setflag ["\\Seen", "\\Flagged", "$Work"];
removeflag "\\Flagged";
fileinto "Folder";
