#!/usr/bin/perl
# Verifies the DKIM signatures of the message on stdin with Mail::DKIM
# (Debian libmail-dkim-perl), its key lookups going to the real DNS server
# at 127.0.0.1:PORT through a Net::DNS resolver. Prints one line per
# signature: `<selector> <domain> <result>`; exits 0 when every signature
# with an algorithm named on the command line (default rsa-sha256) passes.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my ($port, @algorithms) = @ARGV;
@algorithms = ('rsa-sha256') unless @algorithms;
my $res = Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'],
    port        => $port,
    recurse     => 1,
    tcp_timeout => 5,
    udp_timeout => 5,
);
Mail::DKIM::DNS::resolver($res);

binmode STDIN;
local $/;
my $message = <STDIN>;
my $dkim = Mail::DKIM::Verifier->new();
$dkim->PRINT($message);
$dkim->CLOSE;

my $checked = 0;
my $ok = 1;
foreach my $sig ($dkim->signatures) {
    my $alg = $sig->algorithm;
    printf "%s %s %s %s\n", $sig->selector, $sig->domain, $alg, $sig->result;
    next unless grep { $_ eq $alg } @algorithms;
    $checked++;
    $ok = 0 unless $sig->result eq 'pass';
}
exit(($ok && $checked) ? 0 : 1);
