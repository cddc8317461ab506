require "imap4flags";
setflag "$A";
keep;
removeflag "$A";
addflag "$B";
