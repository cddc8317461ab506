require "include";
include :personal "common";
