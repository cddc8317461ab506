require ["imap4flags", "fileinto"];
addflag "$Important";
if hasflag :contains "$Imp" { fileinto "HasFlag"; }
if hasflag "\\Seen" { fileinto "Never"; }
