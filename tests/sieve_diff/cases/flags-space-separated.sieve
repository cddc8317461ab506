require "imap4flags";
addflag "$A $B";
addflag "\\seen";
