require ["imap4flags", "variables", "fileinto"];
set "myflags" "";
addflag "myflags" ["\\Draft", "$One"];
removeflag "myflags" "$One";
if hasflag "myflags" "\\draft" { fileinto :flags "${myflags}" "Var"; }
