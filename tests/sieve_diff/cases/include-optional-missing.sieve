require "include";
include :optional "missing";
