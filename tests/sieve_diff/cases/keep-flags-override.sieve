require "imap4flags";
addflag "$Global";
keep :flags "$Own";
