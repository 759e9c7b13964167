DROP TABLE cart_lines, carts;
