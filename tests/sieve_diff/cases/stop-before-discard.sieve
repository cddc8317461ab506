if header :contains "subject" "report" { stop; }
discard;
