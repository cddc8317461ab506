require ["imap4flags", "fileinto", "copy"];
addflag "$One";
fileinto :copy "Copy";
addflag "$Two";
