/*! Refport click script: ?refport_id=clk_... -> first-party cookie. data-window-days (90), data-domain, data-clean-url.
Stripe, zero-code: with a click id (a valid ?refport_id, else the refport_id cookie) every <a href> to a Payment Link
(buy.stripe.com, and custom domains opted in with data-stripe-hosts="pay.example.com,...") gets ?client_reference_id=<id>
(only that parameter is set), every <stripe-pricing-table> / <stripe-buy-button> the client-reference-id attribute;
elements added later too. A value the merchant set that is not a clk_ id is kept. Without a click id: nothing.
(checkout.stripe.com Session URLs are left alone: their client_reference_id is fixed when the Session is created.) */
(function(w,d){try{
var s=d.currentScript,l=w.location,h=w.history,p=new URLSearchParams(l.search),v=p.get("refport_id"),
a=function(k){return s&&s.getAttribute("data-"+k)},n=Math.floor(a("window-days")),o=a("domain"),
R=/^clk_[0-9A-Za-z]{1,106}$/,K="client_reference_id",E="client-reference-id",c,H,f,g;
if(R.test(v)){
c="refport_id="+v+"; Max-Age="+(n>0&&n<3651?n:90)*86400+"; Path=/; SameSite=Lax";
if(l.protocol=="https:")c+="; Secure";
if(o&&/^\.?[0-9a-z-]+(\.[0-9a-z-]+)+$/i.test(o))c+="; Domain="+o;
d.cookie=c;
if(a("clean-url")!=null&&h.replaceState){p.delete("refport_id");p+="";h.replaceState(h.state,"",l.pathname+(p?"?"+p:"")+l.hash)}
}else{c=/(?:^|;\s*)refport_id=([^;]*)/.exec(d.cookie);v=c&&c[1];if(!R.test(v))return}
H=("buy.stripe.com,"+(a("stripe-hosts")||"")).replace(/\s/g,"").toLowerCase().split(",");
g=function(e){try{var t=e.localName,u,x;
if(t=="a"){if(e.hostname&&H.indexOf(e.hostname)>=0){u=new URL(e.href);x=u.searchParams.get(K);if(x!=v&&(!x||R.test(x))){u.searchParams.set(K,v);e.href=u.href}}}
else if(t=="stripe-pricing-table"||t=="stripe-buy-button"){x=e.getAttribute(E);if(x!=v&&(!x||R.test(x)))e.setAttribute(E,v)}}catch(_){}};
f=function(n){if(n.querySelectorAll){g(n);[].forEach.call(n.querySelectorAll("a[href],stripe-pricing-table,stripe-buy-button"),g)}};
new MutationObserver(function(r){r.forEach(function(m){m.type=="attributes"?g(m.target):[].forEach.call(m.addedNodes,f)})})
.observe(d,{childList:!0,subtree:!0,attributes:!0,attributeFilter:["href",E]});
f(d);if(d.readyState=="loading")d.addEventListener("DOMContentLoaded",function(){f(d)})
}catch(_){}})(window,document);
