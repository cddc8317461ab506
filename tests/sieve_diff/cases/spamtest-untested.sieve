require ["spamtest", "fileinto"];
if spamtest "0" { fileinto "Untested"; }
