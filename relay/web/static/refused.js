// A page the user may not open: the header (to go elsewhere or log out) and a
// link to the user's own landing page.
import { me } from "/static/header.js";

me().then((user) => {
  if (user) document.getElementById("home").href = user.home;
});
