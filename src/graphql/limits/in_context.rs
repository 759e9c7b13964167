//! The `@inContext` directive of the Storefront API.

use async_graphql::{ServerError, ServerResult};

/// Registers `directive @inContext(country: CountryCode, language: LanguageCode) on QUERY | MUTATION`
/// so that documents using it validate; its arguments are read in the limits hook.
pub struct InContextDirective;

impl async_graphql::CustomDirectiveFactory for InContextDirective {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        "inContext".into()
    }

    fn register(&self, registry: &mut async_graphql::registry::Registry) {
        use async_graphql::InputType;
        use async_graphql::registry::{__DirectiveLocation, MetaDirective, MetaInputValue};
        let country =
            <Option<super::super::types::common::CountryCode> as InputType>::create_type_info(
                registry,
            );
        let language =
            <Option<super::super::types::common::LanguageCode> as InputType>::create_type_info(
                registry,
            );
        let arg = |name: &str, ty: String, desc: &str| MetaInputValue {
            name: name.to_string(),
            description: Some(desc.to_string()),
            ty,
            deprecation: Default::default(),
            default_value: None,
            visible: None,
            inaccessible: false,
            tags: vec![],
            is_secret: false,
            directive_invocations: vec![],
        };
        let mut args = async_graphql::indexmap::IndexMap::new();
        args.insert(
            "country".to_string(),
            arg(
                "country",
                country,
                "The country code for the request (selects the currency).",
            ),
        );
        args.insert(
            "language".to_string(),
            arg("language", language, "The language code for the request."),
        );
        registry.add_directive(MetaDirective {
            name: "inContext".into(),
            description: Some(
                "Contextualizes data: prices in the country's currency where the catalog has them."
                    .into(),
            ),
            locations: vec![__DirectiveLocation::QUERY, __DirectiveLocation::MUTATION],
            args,
            is_repeatable: false,
            visible: None,
            composable: None,
        });
    }

    fn create(
        &self,
        _ctx: &async_graphql::ContextDirective<'_>,
        _directive: &async_graphql::parser::types::Directive,
    ) -> ServerResult<Box<dyn async_graphql::CustomDirective>> {
        Err(ServerError::new(
            "@inContext is only allowed on operations",
            None,
        ))
    }
}
