require "imap4flags";
removeflag "\\Seen";
addflag "$x";
removeflag "$X";
