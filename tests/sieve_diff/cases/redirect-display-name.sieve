require "copy";
redirect :copy "Carol Q <carol@example.net>";
redirect "<dave@example.com>";
