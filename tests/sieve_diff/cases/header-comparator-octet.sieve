require "fileinto";
if header :is :comparator "i;octet" "subject" "quarterly report" { fileinto "Octet"; }
if header :is :comparator "i;ascii-casemap" "subject" "quarterly report" { fileinto "Casemap"; }
