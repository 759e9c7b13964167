//! Types shared across the storefront schema: scalars, money, images, SEO, page info.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, scalar};
use serde::{Deserialize, Serialize};

use super::super::app_from;
use crate::money;

/// Shopify's `Decimal`: a decimal number serialized as a string (`"19.99"`).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Decimal(pub String);
scalar!(
    Decimal,
    "Decimal",
    "A signed decimal number, serialized as a string (e.g. \"19.99\")."
);

/// Shopify's `HTML`: an HTML string.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Html(pub String);
scalar!(Html, "HTML", "An HTML string.");

/// Shopify's `URL`: an RFC 3986 URL string.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Url(pub String);
scalar!(Url, "URL", "An RFC 3986 and RFC 3987 compliant URI string.");

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($code:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum $name { $($code),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$code => stringify!($code)),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text.trim() { $(stringify!($code) => Some($name::$code),)+ _ => None }
            }
        }
    };
}

code_enum!(
    /// ISO 4217 currency codes the gateway prices in.
    CurrencyCode {
        USD, EUR, GBP, CAD, AUD, NZD, CHF, SEK, NOK, DKK, PLN, CZK, HUF, RON, BGN, JPY, KRW, CNY,
        HKD, SGD, TWD, INR, IDR, MYR, PHP, THB, VND, AED, SAR, ILS, TRY, MXN, BRL, CLP, ZAR, ISK,
        BHD, KWD, OMR, JOD, TND, UGX, XAF, XOF
    }
);

code_enum!(
    /// ISO 3166-1 alpha-2 country codes.
    CountryCode {
        AC, AD, AE, AF, AG, AI, AL, AM, AN, AO, AR, AT, AU, AW, AX, AZ, BA, BB, BD, BE, BF, BG,
        BH, BI, BJ, BL, BM, BN, BO, BQ, BR, BS, BT, BV, BW, BY, BZ, CA, CC, CD, CF, CG, CH, CI,
        CK, CL, CM, CN, CO, CR, CU, CV, CW, CX, CY, CZ, DE, DJ, DK, DM, DO, DZ, EC, EE, EG, EH,
        ER, ES, ET, FI, FJ, FK, FO, FR, GA, GB, GD, GE, GF, GG, GH, GI, GL, GM, GN, GP, GQ, GR,
        GS, GT, GW, GY, HK, HM, HN, HR, HT, HU, ID, IE, IL, IM, IN, IO, IQ, IR, IS, IT, JE, JM,
        JO, JP, KE, KG, KH, KI, KM, KN, KP, KR, KW, KY, KZ, LA, LB, LC, LI, LK, LR, LS, LT, LU,
        LV, LY, MA, MC, MD, ME, MF, MG, MK, ML, MM, MN, MO, MQ, MR, MS, MT, MU, MV, MW, MX, MY,
        MZ, NA, NC, NE, NF, NG, NI, NL, NO, NP, NR, NU, NZ, OM, PA, PE, PF, PG, PH, PK, PL, PM,
        PN, PS, PT, PY, QA, RE, RO, RS, RU, RW, SA, SB, SC, SD, SE, SG, SH, SI, SJ, SK, SL, SM,
        SN, SO, SR, SS, ST, SV, SX, SY, SZ, TA, TC, TD, TF, TG, TH, TJ, TK, TL, TM, TN, TO, TR,
        TT, TV, TW, TZ, UA, UG, UM, US, UY, UZ, VA, VC, VE, VG, VN, VU, WF, WS, XK, YE, YT, ZA,
        ZM, ZW, ZZ
    }
);

code_enum!(
    /// ISO 639-1 language codes (`@inContext(language:)`).
    LanguageCode {
        EN, DE, FR, ES, IT, NL, PT, SV, DA, FI, NB, PL, CS, JA, KO, ZH, TR, AR, HE, RU
    }
);

/// The currency a buyer in `country` pays in, if the catalog prices in it.
pub fn currency_for_country(country: &str) -> Option<&'static str> {
    Some(match country {
        "US" | "EC" | "SV" | "PR" => "USD",
        "AT" | "BE" | "HR" | "CY" | "EE" | "FI" | "FR" | "DE" | "GR" | "IE" | "IT" | "LV"
        | "LT" | "LU" | "MT" | "NL" | "PT" | "SK" | "SI" | "ES" | "MC" | "SM" | "VA" | "AD"
        | "ME" | "XK" => "EUR",
        "GB" | "IM" | "JE" | "GG" => "GBP",
        "CA" => "CAD",
        "JP" => "JPY",
        "AU" => "AUD",
        _ => return None,
    })
}

/// Shopify's `MoneyV2`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "MoneyV2")]
pub struct MoneyV2 {
    /// Decimal money amount.
    pub amount: Decimal,
    /// Currency of the money.
    pub currency_code: CurrencyCode,
}

impl MoneyV2 {
    pub fn new(amount_minor: i64, currency: &str) -> Self {
        Self {
            amount: Decimal(money::format_minor(amount_minor, currency)),
            currency_code: CurrencyCode::parse(currency).unwrap_or(CurrencyCode::USD),
        }
    }
}

/// Shopify's `SEO`.
#[derive(SimpleObject, Clone, Debug, Default)]
#[graphql(name = "SEO")]
pub struct Seo {
    pub title: Option<String>,
    pub description: Option<String>,
}

/// Page information; the cursors are encoded only when asked for.
#[derive(Clone, Debug, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<crate::pagination::Cursor>,
    pub end_cursor: Option<crate::pagination::Cursor>,
}

#[Object]
impl PageInfo {
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }

    async fn has_previous_page(&self) -> bool {
        self.has_previous_page
    }

    async fn start_cursor(&self) -> Option<String> {
        self.start_cursor.as_ref().map(|c| c.encode())
    }

    async fn end_cursor(&self) -> Option<String> {
        self.end_cursor.as_ref().map(|c| c.encode())
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct SelectedOption {
    pub name: String,
    pub value: String,
}

#[derive(InputObject, Clone, Debug)]
pub struct SelectedOptionInput {
    pub name: String,
    pub value: String,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ImageContentType {
    Png,
    Jpg,
    Webp,
    /// Not in Shopify's enum; served where the image CDN supports it.
    Avif,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CropRegion {
    Center,
    Top,
    Bottom,
    Left,
    Right,
    Region,
}

/// Shopify's `ImageTransformInput`: asks the image CDN for a resized or re-encoded copy.
#[derive(InputObject, Clone, Debug, Default)]
pub struct ImageTransformInput {
    pub crop: Option<CropRegion>,
    pub max_width: Option<i32>,
    pub max_height: Option<i32>,
    /// 1 to 3: device pixel ratio.
    pub scale: Option<i32>,
    pub preferred_content_type: Option<ImageContentType>,
}

/// An image: the gateway only builds URLs; the bytes come from the image CDN.
#[derive(Clone, Debug)]
pub struct Image {
    pub id: Option<String>,
    pub url: String,
    pub alt_text: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

impl From<&crate::catalog::models::Image> for Image {
    fn from(i: &crate::catalog::models::Image) -> Self {
        Self {
            id: Some(crate::ids::encode("ProductImage", i.id)),
            url: i.url.clone(),
            alt_text: i.alt_text.clone(),
            width: i.width,
            height: i.height,
        }
    }
}

/// Builds a transformed image URL from `IMAGE_URL_TEMPLATE`.
///
/// The template's placeholders are `{url}` (the original URL), `{width}`, `{height}`,
/// `{crop}` and `{format}`; a value the client did not ask for renders as `auto`. With the
/// default template `{url}`, the parameters are appended as a query string the way
/// Shopify's CDN reads them (`?width=300&height=200&crop=center&format=webp`).
pub fn transformed_url(
    template: &str,
    url: &str,
    t: &ImageTransformInput,
) -> Result<String, String> {
    let scale = t.scale.unwrap_or(1);
    if !(1..=3).contains(&scale) {
        return Err("scale must be 1, 2 or 3".into());
    }
    let dim = |v: Option<i32>, name: &str| -> Result<Option<i32>, String> {
        match v {
            None => Ok(None),
            Some(v) if (1..=5760).contains(&v) => Ok(Some(v * scale)),
            Some(_) => Err(format!("{name} must be between 1 and 5760")),
        }
    };
    let width = dim(t.max_width, "maxWidth")?;
    let height = dim(t.max_height, "maxHeight")?;
    let crop = t.crop.map(|c| format!("{c:?}").to_lowercase());
    let format = t
        .preferred_content_type
        .map(|f| format!("{f:?}").to_lowercase());
    if template == "{url}" {
        let mut parsed =
            url::Url::parse(url).map_err(|_| "the image URL is not valid".to_string())?;
        {
            let mut q = parsed.query_pairs_mut();
            if let Some(w) = width {
                q.append_pair("width", &w.to_string());
            }
            if let Some(h) = height {
                q.append_pair("height", &h.to_string());
            }
            if let Some(c) = &crop {
                q.append_pair("crop", c);
            }
            if let Some(f) = &format {
                q.append_pair("format", f);
            }
        }
        let text = parsed.to_string();
        return Ok(text.strip_suffix('?').map(str::to_string).unwrap_or(text));
    }
    let auto = |v: Option<String>| v.unwrap_or_else(|| "auto".into());
    Ok(template
        .replace("{width}", &auto(width.map(|w| w.to_string())))
        .replace("{height}", &auto(height.map(|h| h.to_string())))
        .replace("{crop}", &auto(crop))
        .replace("{format}", &auto(format))
        .replace("{url}", url))
}

#[Object]
impl Image {
    /// A unique ID for the image.
    async fn id(&self) -> Option<async_graphql::ID> {
        self.id.clone().map(async_graphql::ID)
    }

    /// The location of the image as a URL, transformed by the image CDN when asked.
    async fn url(
        &self,
        ctx: &Context<'_>,
        transform: Option<ImageTransformInput>,
    ) -> async_graphql::Result<Url> {
        match transform {
            None => Ok(Url(self.url.clone())),
            Some(t) => {
                let template = &app_from(ctx).config.shop.image_url_template;
                transformed_url(template, &self.url, &t)
                    .map(Url)
                    .map_err(super::super::errors::bad_input)
            }
        }
    }

    /// A word or phrase to share the nature or contents of an image.
    async fn alt_text(&self) -> Option<&str> {
        self.alt_text.as_deref()
    }

    /// The original width of the image in pixels.
    async fn width(&self) -> Option<i32> {
        self.width
    }

    /// The original height of the image in pixels.
    async fn height(&self) -> Option<i32> {
        self.height
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_urls_follow_the_template() {
        let t = ImageTransformInput {
            max_width: Some(300),
            scale: Some(2),
            preferred_content_type: Some(ImageContentType::Webp),
            ..Default::default()
        };
        assert_eq!(
            transformed_url("{url}", "https://img.test/a.jpg", &t).unwrap(),
            "https://img.test/a.jpg?width=600&format=webp"
        );
        assert_eq!(
            transformed_url(
                "https://cdn.test/w={width},h={height},f={format}/{url}",
                "https://img.test/a.jpg",
                &t
            )
            .unwrap(),
            "https://cdn.test/w=600,h=auto,f=webp/https://img.test/a.jpg"
        );
        let bad = ImageTransformInput {
            scale: Some(9),
            ..Default::default()
        };
        assert!(transformed_url("{url}", "https://img.test/a.jpg", &bad).is_err());
    }
}
