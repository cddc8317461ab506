require "copy";
redirect :copy "carol@example.net";
redirect :copy "dave@example.com";
