#!/usr/bin/perl
# Signs the message on stdin with Mail::DKIM (Debian libmail-dkim-perl), a
# DKIM signer independent of mailc and dkimpy: rsa-sha256 with the PEM key
# KEYFILE as SELECTOR._domainkey.DOMAIN, canonicalization METHOD
# (relaxed/relaxed by default). Prints the signed message.
# Usage: mail_dkim_sign.pl KEYFILE SELECTOR DOMAIN [METHOD]
use strict;
use warnings;
use Mail::DKIM::Signer;
use Mail::DKIM::PrivateKey;
use Crypt::OpenSSL::RSA;

my ($keyfile, $selector, $domain, $method) = @ARGV;
$method ||= 'relaxed/relaxed';
binmode STDIN;
binmode STDOUT;
local $/;
my $message = <STDIN>;
$message =~ s/\r?\n/\r\n/g;
# Mail::DKIM wants the PKCS#1 body; dknewkey writes PKCS#8.
my $pem = do { open my $fh, '<', $keyfile or die "$keyfile: $!"; local $/; <$fh> };
my $pkcs1 = Crypt::OpenSSL::RSA->new_private_key($pem)->get_private_key_string();
my ($body) = $pkcs1 =~ /-----BEGIN RSA PRIVATE KEY-----(.*)-----END RSA PRIVATE KEY-----/s;
$body =~ s/\s+//g;
my $key = Mail::DKIM::PrivateKey->load(Data => $body);
my $signer = Mail::DKIM::Signer->new(
    Algorithm => 'rsa-sha256',
    Method    => $method,
    Domain    => $domain,
    Selector  => $selector,
    Key       => $key,
    Headers   => 'from:to:subject:date:message-id',
);
$signer->PRINT($message);
$signer->CLOSE;
print $signer->signature->as_string, "\r\n", $message;
